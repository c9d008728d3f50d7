"""The provider's example DAGs, shipped in the wheel: point a DAG bundle or ``dags_folder`` at this
package's folder (``python -c "import airflow_provider_ges.example_dags as e; print(e.__path__[0])"``), or
copy a file from it."""
