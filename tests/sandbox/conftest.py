from sandbox.testing import sandbox, sandbox_aws, sandbox_session, sandbox_settings  # noqa: F401
