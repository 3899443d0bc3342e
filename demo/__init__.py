"""The demo's make-believe company: the sample ERP (``sample_erp``: every table generated, with
its bad records and the figures a sync must reach) and the field's work in Procore
(``field_activity``). Nothing of the product imports it; the demo command and the tests do."""
