import pytest

from tests.baked import TEMPLATE, BakedProject


def pytest_configure(config):
    # pytest-cookies bakes the template at the repository root.
    if not config.option.template or config.option.template == ".":
        config.option.template = str(TEMPLATE)


@pytest.fixture(scope="session")
def installed_project(cookies_session) -> BakedProject:
    """The default bake, installed with Poetry once per test session (slow)."""
    result = cookies_session.bake()
    assert result.exception is None, result.exception
    project = BakedProject(result.project_path, result.context)
    project.make("install", timeout=1800)
    return project
