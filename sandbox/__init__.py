"""A local stand-in for Procore's REST API, strict where Procore is strict and unkind where it is.

procore-sync is tested and demonstrated against this sandbox instead of a real Procore company.
It serves the operations the tool uses (OAuth client credentials, companies, and every resource
an ERP → Procore sync writes: vendors, projects, cost codes and types, sub jobs, WBS codes, the
original budget, users, prime contracts, subcontracts, purchase orders and direct costs, with
their sync actions) with Procore's paths, status codes, bodies and headers, and it reproduces the
conditions a sync must survive: the hourly and spike quotas with their ``X-Rate-Limit-*``
headers, 5xx answers, latency, and answers lost after the write landed. Time comes from an
injected clock, so tests move it by hand instead of sleeping.

Every request is also checked against Procore's published API description (``sandbox/openapi/``,
see ``sandbox.contract``); breaches are recorded, not refused, so a test can run a whole sync and
then assert the client never sent anything Procore does not document.

Entry points: ``sandbox.app.create_app`` (an ASGI app, for FastAPI's TestClient),
``sandbox.server.start_in_thread`` (a real server on 127.0.0.1) and ``sandbox.server.serve``
(the ``procore-sync sandbox`` command). This package imports nothing on its own, so
``sandbox.config`` stays cheap to import.
"""
