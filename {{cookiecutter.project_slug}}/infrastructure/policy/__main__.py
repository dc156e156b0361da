"""Policy pack: `make preview` and `make provision` run it, so `pulumi preview` and `pulumi up` refuse a stack that
breaks the security rules of ml-workflows (ml_workflows.policy: no public Dask ports, private encrypted buckets,
least-privilege IAM). The rules come with the runtime and are upgraded with it; infrastructure/tests check this
project's program against them."""

from ml_workflows.policy import serve

if __name__ == "__main__":  # the Pulumi CLI runs this file as __main__; constructing the pack serves it
    serve("{{ cookiecutter.project_slug }}-security")
