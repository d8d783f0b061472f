"""The client side of Tether's workflows, shared by the API and the trigger activities.

``clients.sessions`` submits runs to a session's ``SessionRunWorkflow`` and signals it;
``clients.schedules`` manages the Temporal Schedules of schedule triggers and starts webhook
firings. Both raise the domain errors of ``clients.errors``, never raw Temporal errors, so
callers decide what an outcome means to them (the API maps them to HTTP in ``api.errors``).
"""
