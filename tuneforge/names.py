"""Short names to resource names, inside a project: pure functions the SDK and the CLI share.

    model("p", "essay")                  -> projects/p/models/essay
    model_version("p", "essay/3")        -> projects/p/models/essay/versions/3
    model_version("p", "essay@prod")     -> projects/p/models/essay/versions/prod   (an alias)
    model_version("p", "essay")          -> projects/p/models/essay/versions/latest
    dataset_version("p", "chats")        -> projects/p/datasets/chats/versions/latest
A full name (`projects/...`) is returned as it is.
"""

from __future__ import annotations


def model(project: str, ref: str) -> str:
    return ref if ref.startswith("projects/") else f"projects/{project}/models/{ref}"


def model_version(project: str, ref: str) -> str:
    """`m/3`, `m@alias`, `m` (latest) or a full name, as a version resource name."""
    if ref.startswith("projects/"):
        return ref if "/versions/" in ref else f"{ref}/versions/latest"
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return f"{model(project, name)}/versions/{alias}"
    if "/" in ref:
        name, version = ref.split("/", 1)
        return f"{model(project, name)}/versions/{version}"
    return f"{model(project, ref)}/versions/latest"


def dataset(project: str, ref: str) -> str:
    return ref if ref.startswith("projects/") else f"projects/{project}/datasets/{ref}"


def dataset_version(project: str, ref: str) -> str:
    """`ds/3`, `ds` (the latest ready version) or a full name."""
    if ref.startswith("projects/"):
        return ref if "/versions/" in ref else f"{ref}/versions/latest"
    name, _, version = ref.partition("/")
    return f"{dataset(project, name)}/versions/{version or 'latest'}"


def training_job(project: str, ref: str) -> str:
    return ref if ref.startswith("projects/") else f"projects/{project}/trainingJobs/{ref}"


def evaluation(project: str, ref: str) -> str:
    return ref if ref.startswith("projects/") else f"projects/{project}/evaluations/{ref}"


def base_model(project: str, ref: str) -> str:
    """A training job's base: a model version or an operator-allowed `local:///path`."""
    return ref if ref.startswith(("projects/", "local://")) else model_version(project, ref)
