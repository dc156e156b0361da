import pytest

from tests.baked import TEMPLATE, BakedProject


def pytest_configure(config):
    # pytest-cookies bakes the template at the repository root.
    if not config.option.template or config.option.template == ".":
        config.option.template = str(TEMPLATE)


def pytest_collection_modifyitems(config, items):
    """The answer matrix only where a marker expression names it (make matrix, the answer-matrix workflow); then
    slow tests first. With `-n 2 --dist loadgroup` a free worker takes the next group in collection order, so
    the long install-and-run tests start at once and the quick ones fill in at the end; a long test collected
    last (tests/test_second_model.py) otherwise started after most of the run and finished it alone."""
    if "matrix" not in (config.getoption("markexpr") or ""):
        matrix = [item for item in items if item.get_closest_marker("matrix")]
        if matrix:
            config.hook.pytest_deselected(items=matrix)
            items[:] = [item for item in items if not item.get_closest_marker("matrix")]
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def installed_project(cookies_session) -> BakedProject:
    """The default bake, installed with Poetry once per test session (slow)."""
    result = cookies_session.bake()
    assert result.exception is None, result.exception
    project = BakedProject(result.project_path, result.context)
    project.make("install", timeout=1800)
    return project
