"""procore-sync's base: what every layer shares and which imports nothing else of ours.

The settings (and each source's configuration, ``source_config``), the error tree, redaction,
secret references and the country and state codes. Above it, in layers that import only
downward (checked by ``make test``, import-linter, pyproject.toml): ``connectors`` (everything
that talks to the outside), ``tasks`` (the generic engine), ``flows`` (one module per entity),
``deployments``, ``demo`` (the sample ERP and the field's play) and ``app`` (the CLI, the
runner, the webhook receiver, the demo command). The ``sandbox`` (the local Procore) stands
beside them.
"""
