"""The application: the ``procore-sync`` CLI (``cli``), running flows in this process or serving
the deployments (``runner``), the webhook receiver (``receiver``), the CSV templates
(``templates``), the demo command (``demo``) and the local Prefect servers it and the tests start
(``prefect_server``, ``local_postgres``). The top layer: it may import every other one."""
