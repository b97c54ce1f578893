"""The demo loader fills a real Phoenix with what every page needs, and only once."""

from __future__ import annotations

from collections import Counter

import pytest

from devtools.demo_data import DATASET_NAME, PROJECT_NAMES, load_demo
from services.phoenix import PhoenixClient

pytestmark = pytest.mark.integration


@pytest.fixture
def loaded(demo_loaded):
    """The session's demo slice."""
    return demo_loaded


def test_loader_sends_projects_prompts_spans_and_evaluations(loaded, phoenix_server) -> None:
    client = PhoenixClient(phoenix_server.url)
    assert len(loaded.projects) >= 3
    assert set(loaded.projects) <= {p["name"] for p in client.projects()}

    spans = [
        span
        for project in PROJECT_NAMES
        for span in client.paginate(f"/v1/projects/{project}/spans", {"limit": 1000})
    ]
    assert len(spans) == loaded.total_spans
    kinds = Counter(span["span_kind"] for span in spans)
    assert kinds["LLM"] == loaded.llm_spans == 90
    assert kinds["CHAIN"] > 0 and kinds["RETRIEVER"] > 0
    llm = [s for s in spans if s["span_kind"] == "LLM"]
    assert all("llm.prompt_template.template" in s["attributes"] for s in llm)
    assert all("llm.prompt_template.version" in s["attributes"] for s in llm)
    assert len({s["attributes"]["llm.model_name"] for s in llm}) >= 3
    assert any(s["status_code"] == "ERROR" for s in llm)

    prompts = list(client.paginate("/v1/prompts", {"limit": 100}))
    assert len(prompts) >= 4
    for prompt in prompts:
        versions = list(client.paginate(f"/v1/prompts/{prompt['id']}/versions", {"limit": 100}))
        assert 2 <= len(versions) <= 3

    kinds_by_name: dict[str, set[str]] = {}
    for project in PROJECT_NAMES:
        project_ids = [
            s["context"]["span_id"]
            for s in client.paginate(f"/v1/projects/{project}/spans", {"span_kind": "LLM"})
        ]
        for a in client.get_json(
            f"/v1/projects/{project}/span_annotations",
            {"span_ids": project_ids[:100], "limit": 1000},
        )["data"]:
            kinds_by_name.setdefault(a["name"], set()).add(a["annotator_kind"])
        assert project_ids, project
    assert {"LLM", "HUMAN"} <= set().union(*kinds_by_name.values())
    assert len(kinds_by_name) >= 2


def test_loader_records_a_dataset_with_experiments(loaded, phoenix_server) -> None:
    client = PhoenixClient(phoenix_server.url)
    datasets = client.get_json("/v1/datasets", {"name": DATASET_NAME})["data"]
    assert [d["id"] for d in datasets] == [loaded.dataset_id]
    experiments = client.get_json(f"/v1/datasets/{loaded.dataset_id}/experiments")["data"]
    assert len(experiments) >= 2
    runs = client.get_json(f"/v1/experiments/{loaded.experiment_ids[0]}/json")
    assert runs and all(run["annotations"] for run in runs)


def test_second_load_sends_nothing(loaded, phoenix_server) -> None:
    again = load_demo(phoenix_server.url, llm_spans=90, seed=11)
    assert again.skipped
    assert again.dataset_id == loaded.dataset_id
