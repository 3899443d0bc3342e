"""procore-sync: keep an ERP and Procore in sync, one Prefect flow per entity.

The application glue lives here (settings, the error tree, redaction, the CLI and the demo);
the moving parts live in the top-level packages of the design card: ``connectors`` (everything
that talks to the outside), ``tasks`` (the generic engine), ``flows`` (one module per entity) and
``deployments``.
"""
