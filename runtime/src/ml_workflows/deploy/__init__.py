"""Deploy-time tools, run by `make` (never by a flow run): deploy/destroy, the work pool template,
the rehearsal, Prefect automations, the version-pin guard and the locked requirements for the image."""
