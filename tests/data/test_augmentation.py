"""Data augmentation and smart annotation against a real OpenAI-compatible server: the project's own
serve service running the tiny model (a `writer` with random weights, and a `judge` tuned to answer
`Score: 8`), through the data service and its worker. No mock anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from sqlalchemy import create_engine, text

from services.kit.judging import single_prompt
from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.api.augmentation import ITEM_STATUSES, RUN_STATES, TASK_STATES
from tuneforge.api.serving import DEPLOYMENT_STATES
from tuneforge.api.training import STATE_NAMES

QUESTIONS = [
    "What is the capital of France?",
    "Name a prime number above ten.",
    "How many legs has a spider?",
    "What colour is the sky at noon?",
    "Translate 'cat' into French.",
    "What is two plus three?",
]


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def upload(client: Client, tmp_path: Path, name: str, kind: str, records: list[dict]) -> str:
    client.data.create(name, kind)
    path = tmp_path / f"{name}.jsonl"
    path.write_text(jsonl(records), encoding="utf-8")
    version = client.data.upload(name, path)
    assert version.state == 1, version.errors  # READY
    return version.name


def eval_rows(n: int = 6) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)] + f" ({i})"}],
            "reference": f"answer {i}",
        }
        for i in range(n)
    ]


def sft_rows(n: int = 4) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": QUESTIONS[i]},
                {"role": "assistant", "content": f"It is {i}."},
            ]
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def lab(
    suite: LocalSuite, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    """A project with two deployments: `writer` (the tiny model as built) and `judge` (tuned to
    answer `Score: 8` to the judge's prompt), and teachers for them."""
    project = "aug-" + uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("aug")
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as client:
        client.models.create("tiny")
        base = client.models.upload("tiny", tiny_model_dir).name
        judged = [
            {
                "messages": [
                    {"role": "user", "content": single_prompt(q, "", f"answer {i}", "")},
                    {"role": "assistant", "content": "Score: 8"},
                ]
            }
            for i, q in enumerate(QUESTIONS * 4)
        ]
        version = upload(client, tmp, "judge-sft", "sft", judged)
        job = client.train.create(
            base_model=base,
            training_data={version: 1.0},
            tuning="full",
            hyperparameters={"epochs": 6, "batch_size": 8, "learning_rate": 3e-3},
        )
        done = client.train.wait(job.name, timeout=600)
        assert STATE_NAMES[done.state] == "succeeded", done.error
        client.serve.create("writer", base, max_tokens=12, temperature=0.0)
        client.serve.create("judge", done.final_model_version, max_tokens=6, temperature=0.0)
        for name in ("writer", "judge"):
            deployment = client.serve.wait(name, timeout=180)
            assert DEPLOYMENT_STATES[deployment.state] == "ready", deployment.state_reason
        client.augment.create_teacher("writer", deployment="writer", max_concurrency=4)
        client.augment.create_teacher("judge", deployment="judge", max_concurrency=4)
        yield client


def finished(client: Client, run) -> object:  # type: ignore[no-untyped-def]
    return client.augment.wait(run.name, timeout=300)


def recipe(client: Client, version: str) -> dict:
    return json_format.MessageToDict(client.data.get_version(version).recipe)


def rejects(run) -> list[dict]:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(run.rejects.url) as response:
        return [json.loads(line) for line in response.read().decode().splitlines()]


def test_teachers_keep_their_key_sealed_and_refuse_bad_endpoints(
    lab: Client, suite: LocalSuite, tmp_path: Path
) -> None:
    secret = "sk-test-" + uuid.uuid4().hex
    created = lab.augment.create_teacher(
        "outside", base_url="http://127.0.0.1:9/v1", model="m", api_key=secret
    )
    assert created.has_api_key and not created.api_key and created.max_concurrency == 8
    assert all(not t.api_key for t in lab.augment.teachers())
    # At rest the key is sealed; no log line of the data service holds it.
    engine = create_engine(suite.service_env("data")["TUNEFORGE_DATABASE_URL"])
    with engine.connect() as conn:
        sealed = conn.execute(
            text("select sealed_api_key from teachers where uid = :u"), {"u": created.uid}
        ).scalar_one()
    engine.dispose()
    assert sealed and secret not in sealed
    for log in (suite.data_dir / "logs").glob("data*.log"):
        assert secret not in log.read_text(errors="replace")
    rotated = lab.augment.update_teacher("outside", api_key="", max_concurrency=2)
    assert not rotated.has_api_key and rotated.max_concurrency == 2

    cases = [
        ({"base_url": "ftp://host/v1", "model": "m"}, "teacher.base_url"),
        ({"base_url": "http://169.254.169.254/v1", "model": "m"}, "teacher.base_url"),
        ({"base_url": "http://user:pw@host/v1", "model": "m"}, "teacher.base_url"),
        ({"base_url": "http://host/v1"}, "teacher.model"),
        ({"deployment": "writer", "base_url": "http://host/v1", "model": "m"}, "teacher.deployment"),
        ({"deployment": "no-such-deployment"}, "teacher.deployment"),
        ({"deployment": "projects/other/deployments/writer"}, "teacher.deployment"),
        ({"base_url": "http://host/v1", "model": "m", "max_concurrency": 1000}, "teacher.max_concurrency"),
        (
            {"base_url": "http://host/v1", "model": "m", "timeout_seconds": float("nan")},
            "teacher.timeout_seconds",
        ),
    ]
    for i, (fields, field) in enumerate(cases):
        error = expect_error("INVALID_ARGUMENT", lab.augment.create_teacher, f"bad-{i}", **fields)
        assert field in {v.field for v in error.violations}, (fields, error.violations)
    assert {t.name.rsplit("/", 1)[1] for t in lab.augment.teachers()} == {"judge", "outside", "writer"}


def test_each_operation_makes_a_version_of_its_kind_with_counts_and_lineage(
    lab: Client, tmp_path: Path
) -> None:
    evals = upload(lab, tmp_path, "questions", "eval", eval_rows(6))
    chats = upload(lab, tmp_path, "chats", "sft", sft_rows(4))
    cases = [
        ("answer", evals, {}, "sft", 6),
        ("paraphrase", chats, {"samples": 2, "temperature": 0.7, "include_source": True}, "sft", 4 + 8),
        ("self_instruct", chats, {"count": 3, "answer": False, "temperature": 0.9}, "prompt_only", 3),
        ("evol_instruct", evals, {"rounds": 2, "max_rows": 3}, "sft", 3),
        ("translate", chats, {"target_language": "zh"}, "sft", 4),
        (
            "preference_pairs",
            evals,
            {"samples": 3, "temperature": 1.0, "min_score_margin": 0, "max_rows": 3},
            "preference",
            3,
        ),
        (
            "preference_pairs",
            evals,
            {
                "samples": 2,
                "temperature": 1.0,
                "max_rows": 2,
                "seed": 5,
                "output_kind": "unpaired_preference",
            },
            "unpaired_preference",
            None,  # one row per distinct answer
        ),
    ]
    for i, (operation, source, parameters, kind, rows) in enumerate(cases):
        run = lab.augment.run(
            operation,
            source,
            into=f"out-{i}",
            teacher="writer",
            judge="judge",
            parameters=parameters,
            filters={"exact_dedup": False},
        )
        assert RUN_STATES[run.state] == "pending" and run.progress.rows_total > 0
        done = finished(lab, run)
        assert RUN_STATES[done.state] == "succeeded", (operation, done.failure, dict(done.errors_by_reason))
        version = lab.data.wait(lab.data.get_version(done.output_version))
        assert (
            lab.data.get(f"out-{i}").kind
            == ["text", "sft", "preference", "unpaired_preference", "prompt_only", "eval"].index(kind) + 1
        )
        if rows is not None:
            assert version.row_count == rows, (operation, version.row_count)
        assert version.row_count == done.progress.kept_rows + (4 if parameters.get("include_source") else 0)
        assert done.progress.rows_done == done.progress.rows_total and not done.progress.rows_failed
        assert done.progress.calls > 0 and done.progress.completion_tokens > 0
        lineage = recipe(lab, done.output_version)
        assert lineage["op"] == "augmentation" and lineage["operation"] == operation
        assert lineage["source"] == source and lineage["augmentation_run"] == done.name
        assert lineage["teacher"]["model"] == "writer" and "api_key" not in json.dumps(lineage)
        assert lineage["parameters"]["seed"] == parameters.get("seed", 0) and lineage["templates"]
    judged = list(lab.data.rows("out-6"))
    assert judged and all(r["label"] is True for r in judged), "the judge scores 8 ≥ the default 6: desirable"
    pairs = list(lab.data.rows("out-5"))
    assert all(p["chosen"][0]["content"] != p["rejected"][0]["content"] for p in pairs)


def test_filters_drop_what_they_should_and_keep_a_rejects_file(lab: Client, tmp_path: Path) -> None:
    source = upload(lab, tmp_path, "filter-questions", "eval", eval_rows(6))
    plain = finished(lab, lab.augment.run("answer", source, into="plain", teacher="writer"))
    answers = {r["id"]: r["messages"][-1]["content"] for r in lab.data.rows(plain.output_version)}
    assert len(answers) == 6
    # A character some answers have and others lack: the regex keeps exactly those.
    counts = Counter(c for a in answers.values() for c in set(a) if c.isalnum())
    char = next(c for c, n in counts.most_common() if 0 < n < len(answers))
    regex = finished(
        lab, lab.augment.run("answer", source, into="plain", teacher="writer", filters={"regex": char})
    )
    kept = {r["id"] for r in lab.data.rows(regex.output_version)}
    assert kept == {i for i, a in answers.items() if char in a}
    assert regex.progress.dropped_by_reason["REGEX"] == 6 - len(kept)
    assert regex.progress.calls == 0 and regex.progress.cached_calls == 6, (
        "the same requests come from the cache"
    )
    assert {r["reason"] for r in rejects(regex)} == {"REGEX"}

    # The judge (always 8): 5 keeps every row, 9 drops every row, and then no version is made.
    kept_by_judge = finished(
        lab,
        lab.augment.run(
            "answer", source, into="plain", teacher="writer", judge="judge", filters={"judge_min_score": 5}
        ),
    )
    assert lab.data.get_version(kept_by_judge.output_version).row_count == 6
    strict = finished(
        lab,
        lab.augment.run(
            "answer", source, into="plain", teacher="writer", judge="judge", filters={"judge_min_score": 9}
        ),
    )
    assert (
        RUN_STATES[strict.state] == "failed"
        and strict.failure.reason == "EMPTY_RESULT"
        and not strict.output_version
    )
    assert strict.progress.dropped_by_reason["JUDGE_SCORE"] == 6
    assert {(r["reason"], r["score"]) for r in rejects(strict)} == {("JUDGE_SCORE", 8)}

    # Two greedy samples of one rewrite are the same row: exact dedup drops the second of each.
    chats = upload(lab, tmp_path, "filter-chats", "sft", sft_rows(4))
    dedup = finished(
        lab,
        lab.augment.run(
            "paraphrase", chats, into="para", teacher="writer", parameters={"samples": 2, "temperature": 0}
        ),
    )
    dropped = dedup.progress.dropped_by_reason["EXACT_DUPLICATE"]
    assert dropped >= 4 and lab.data.get_version(dedup.output_version).row_count == 8 - dropped
    assert all(r["id"].endswith(":paraphrase:0") for r in lab.data.rows(dedup.output_version))

    # Length, and JSON where the teacher writes none: dropped by reason, never a version.
    too_short = finished(
        lab,
        lab.augment.run("answer", source, into="plain", teacher="writer", filters={"min_characters": 10_000}),
    )
    assert too_short.progress.dropped_by_reason["TOO_SHORT"] == 6 and RUN_STATES[too_short.state] == "failed"
    needs_json = finished(
        lab,
        lab.augment.run(
            "answer", source, into="plain", teacher="writer", filters={"required_fields": ["score"]}
        ),
    )
    assert RUN_STATES[needs_json.state] == "failed" and needs_json.failure.reason == "EMPTY_RESULT"
    # Garbage is not JSON (a bare number would be JSON without the field).
    reasons = dict(needs_json.progress.dropped_by_reason)
    assert (
        sum(reasons.values()) == 6
        and set(reasons) <= {"NOT_JSON", "MISSING_FIELDS"}
        and reasons.get("NOT_JSON")
    )
    assert {r["reason"] for r in rejects(needs_json)} == set(reasons)
    assert [v.row_count for v in lab.data.list_versions("plain")] == [6, len(kept), 6], (
        "failed runs add no version"
    )


def test_bad_runs_are_refused_naming_the_field(lab: Client, tmp_path: Path) -> None:
    source = upload(lab, tmp_path, "bad-questions", "eval", eval_rows(2))
    cases = [
        ({"templates": {"answer": "Answer {{ fields.topic }}"}}, "augmentation_run.templates[answer]"),
        ({"templates": {"paraphrase": "x {{ prompt }}"}}, "augmentation_run.templates[paraphrase]"),
        ({"templates": {"answer": "{{ chosen }}"}}, "augmentation_run.templates[answer]"),
        ({"parameters": {"samples": 99}}, "augmentation_run.parameters.samples"),
        ({"parameters": {"temperature": 5}}, "augmentation_run.parameters.temperature"),
        ({"filters": {"regex": "("}}, "augmentation_run.filters.regex"),
        ({"filters": {"json_schema": '{"type": 3}'}}, "augmentation_run.filters.json_schema"),
        ({"filters": {"judge_min_score": 11}}, "augmentation_run.filters.judge_min_score"),
        ({"teacher": "nobody"}, "augmentation_run.teacher"),
    ]
    for extra, field in cases:
        arguments = {"into": "never", "teacher": "writer", **extra}
        error = expect_error("INVALID_ARGUMENT", lab.augment.run, "answer", source, **arguments)
        assert field in {v.field for v in error.violations}, (extra, error.violations)
    error = expect_error(
        "INVALID_ARGUMENT", lab.augment.run, "translate", source, into="never", teacher="writer"
    )
    assert "augmentation_run.parameters.target_language" in {v.field for v in error.violations}
    error = expect_error(
        "INVALID_ARGUMENT", lab.augment.run, "answer", source, into="filter-questions", teacher="writer"
    )
    assert error.violations[0].field == "augmentation_run.output_dataset"
    assert "never" not in {d.name.rsplit("/", 1)[1] for d in lab.data.list()}, "nothing was made"


def test_unreachable_teacher_and_wrong_key_fail_the_run_with_no_version(
    lab: Client, suite: LocalSuite, tmp_path: Path
) -> None:
    source = upload(lab, tmp_path, "lost-questions", "eval", eval_rows(3))
    lab.augment.create_teacher("nowhere", base_url="http://127.0.0.1:9/v1", model="m", max_retries=1)
    lost = finished(lab, lab.augment.run("answer", source, into="lost", teacher="nowhere"))
    assert RUN_STATES[lost.state] == "failed" and lost.failure.reason == "TEACHER_UNREACHABLE", lost.failure
    openai = suite.endpoints["openai"]
    lab.augment.create_teacher(
        "wrong-key", base_url=openai, model=f"projects/{lab.project}/deployments/writer", api_key="tf_bad_key"
    )
    refused = finished(lab, lab.augment.run("answer", source, into="lost", teacher="wrong-key"))
    assert RUN_STATES[refused.state] == "failed" and refused.failure.reason == "TEACHER_UNAUTHORIZED"
    assert "api_key" in refused.failure.message and "tf_bad_key" not in refused.failure.message
    assert not list(lab.data.list_versions("lost"))
    # The right key through the same URL works: a key-holding endpoint teacher.
    lab.augment.update_teacher("wrong-key", api_key=suite.admin_key)
    fixed = finished(lab, lab.augment.run("answer", source, into="lost", teacher="wrong-key"))
    assert RUN_STATES[fixed.state] == "succeeded" and fixed.progress.kept_rows == 3


def test_a_busy_teacher_answers_429_and_is_retried_after_its_retry_after(lab: Client, tmp_path: Path) -> None:
    # One request runs and one waits; the serve service answers the rest 429 with Retry-After: 1.
    lab.serve.create(
        "narrow", lab.serve.get("writer").serving_version, max_tokens=8, max_concurrent_requests=1
    )
    assert DEPLOYMENT_STATES[lab.serve.wait("narrow", timeout=180).state] == "ready"
    lab.augment.create_teacher("eager", deployment="narrow", max_concurrency=8, max_retries=10)
    source = upload(lab, tmp_path, "busy-questions", "eval", eval_rows(10))
    done = finished(lab, lab.augment.run("answer", source, into="busy", teacher="eager"))
    assert RUN_STATES[done.state] == "succeeded" and done.progress.kept_rows == 10, done.failure
    assert done.progress.retries > 0 and done.progress.calls == 10 + done.progress.retries
    stats = lab.serve.stats("narrow").total
    assert dict(stats.errors) == {"RESOURCE_EXHAUSTED": done.progress.retries}, "every retry was a 429"
    assert stats.requests == 10 + done.progress.retries


def test_a_run_killed_midway_resumes_without_calling_again(
    lab: Client, suite: LocalSuite, tmp_path: Path
) -> None:
    rows = 40
    source = upload(lab, tmp_path, "many-questions", "eval", eval_rows(rows))
    lab.augment.create_teacher("slow-writer", deployment="writer", max_concurrency=2)
    run = lab.augment.run(
        "answer", source, into="resumed", teacher="slow-writer", parameters={"max_tokens": 96}
    )
    done_before = 0
    for update in lab.augment.watch(run.name):
        done_before = update.progress.rows_done
        if done_before >= 6:
            break
    assert 6 <= done_before < rows, "killed mid-way"
    suite.processes["data-worker-0"].kill()
    suite.start_worker(0, kind="data")
    done = finished(lab, run)
    assert RUN_STATES[done.state] == "succeeded" and done.progress.kept_rows == rows
    assert done.progress.cached_calls >= done_before, "what was done came from the cache"
    prompts = Counter(
        log.messages[-1].content
        for log in lab.serve.logs("writer")
        if log.messages[-1].content.endswith(tuple(f"({i})" for i in range(rows)))
        and log.parameters["max_tokens"] == 96
    )
    assert set(prompts) == {r["prompt"][0]["content"] for r in eval_rows(rows)}
    repeated = sum(prompts.values()) - rows
    assert repeated <= 2, f"only calls in flight at the kill (≤ max_concurrency) are asked again: {prompts}"
    assert lab.data.get_version(done.output_version).row_count == rows


def test_cancel_keeps_what_is_done(lab: Client, tmp_path: Path) -> None:
    source = upload(lab, tmp_path, "cancel-questions", "eval", eval_rows(40))
    lab.augment.create_teacher("one-at-a-time", deployment="writer", max_concurrency=1)
    run = lab.augment.run(
        "answer", source, into="cancelled", teacher="one-at-a-time", parameters={"max_tokens": 80}
    )
    for update in lab.augment.watch(run.name):
        if update.progress.rows_done >= 3:
            break
    lab.augment.cancel(run.name)
    done = finished(lab, run)
    assert RUN_STATES[done.state] == "cancelled"
    version = lab.data.get_version(done.output_version)
    assert 3 <= version.row_count < 40 and recipe(lab, done.output_version)["cancelled"] is True
    expect_error("FAILED_PRECONDITION", lab.augment.cancel, run.name)


def test_annotation_prelabels_reviews_agreement_and_finish(lab: Client, tmp_path: Path) -> None:
    source = upload(lab, tmp_path, "to-grade", "sft", sft_rows(4))
    template = "{{ instructions }} {{ item }}"
    task = lab.annotate.create(
        source, kind="score", teacher="judge", score_range=(1, 10), instructions="Rate it.", template=template
    )
    task = lab.annotate.wait(task.name, timeout=120)
    assert TASK_STATES[task.state] == "reviewing" and task.progress.items == 4
    items = list(lab.annotate.items(task.name))
    assert len(items) == 4
    labelled = [i for i in items if i.HasField("model_value")]
    assert task.progress.prelabelled == len(labelled) and task.progress.prelabel_failed == 4 - len(labelled)
    assert labelled and all(i.model_value.score == 8 for i in labelled), [i.model_output for i in items]
    first, second, third, fourth = (i.name for i in items)
    if items[0].HasField("model_value"):
        lab.annotate.review(first, "ana", accept=True)
    else:
        lab.annotate.review(first, "ana", score=8)
    lab.annotate.review(second, "ana", score=3)
    lab.annotate.review(second, "bo", score=3)
    lab.annotate.review(third, "ana", reject=True)
    lab.annotate.review(third, "bo", score=9)
    lab.annotate.review(third, "cy", reject=True)
    error = expect_error("INVALID_ARGUMENT", lab.annotate.review, fourth, "ana", score=11)
    assert error.violations[0].field == "value"
    statuses = {i.name: ITEM_STATUSES[i.status] for i in lab.annotate.items(task.name)}
    assert [statuses[n] for n in (first, second, third, fourth)] == ["kept", "kept", "rejected", "unreviewed"]
    assert [i.name for i in lab.annotate.items(task.name, status="unreviewed")] == [fourth]
    assert [i.name for i in lab.annotate.items(task.name, annotator="bo")] == [second, third]
    agreement = lab.annotate.get(task.name).agreement
    assert agreement.reviewed_items == 3 and agreement.multi_reviewed_items == 2
    assert dict(agreement.reviews_by_action) == {"accept": 1, "edit": 3, "reject": 2} or not items[
        0
    ].HasField("model_value")
    # Reviewer pairs: item 2 agree (1 of 1), item 3: ana/cy agree, ana/bo and bo/cy do not (1 of 3).
    assert agreement.reviewer_agreement == pytest.approx(2 / 4)

    finished_task = lab.annotate.finish(task.name, into="graded", min_score=5)
    assert TASK_STATES[finished_task.state] == "finished"
    version = lab.data.wait(lab.data.get_version(finished_task.output_version))
    kept = [r["id"] for r in lab.data.rows(finished_task.output_version)]
    assert kept == [items[0].row_id], "item 2 scored 3 < 5, item 3 rejected, item 4 unreviewed"
    assert {f.path for f in version.files} >= {"data.parquet", "labels.jsonl"}
    assert recipe(lab, version.name)["annotation_task"] == task.name

    # Corrections: the edited answer is the row's answer; rejected rows are dropped.
    fix = lab.annotate.wait(
        lab.annotate.create(source, kind="correction", teacher="writer").name, timeout=120
    )
    fix_items = list(lab.annotate.items(fix.name))
    lab.annotate.review(fix_items[0].name, "ana", answer="The right answer.")
    lab.annotate.review(fix_items[1].name, "ana", reject=True)
    if fix_items[2].HasField("model_value"):
        lab.annotate.review(fix_items[2].name, "ana", accept=True)
    done = lab.annotate.finish(fix.name, into="corrected")
    rows = {r["id"]: r for r in lab.data.rows(lab.data.wait(lab.data.get_version(done.output_version)).name)}
    assert rows[fix_items[0].row_id]["messages"][-1]["content"] == "The right answer."
    assert fix_items[1].row_id not in rows and fix_items[3].row_id not in rows
    expect_error("FAILED_PRECONDITION", lab.annotate.review, fix_items[3].name, "ana", reject=True)


def test_choice_annotation_orders_pairs_and_people_only_tasks(lab: Client, tmp_path: Path) -> None:
    pairs = [
        {
            "prompt": [{"role": "user", "content": q}],
            "chosen": [{"role": "assistant", "content": f"good {i}"}],
            "rejected": [{"role": "assistant", "content": f"bad {i}"}],
        }
        for i, q in enumerate(QUESTIONS[:3])
    ]
    source = upload(lab, tmp_path, "pairs", "preference", pairs)
    task = lab.annotate.wait(lab.annotate.create(source, kind="choice").name, timeout=60)
    assert TASK_STATES[task.state] == "reviewing" and not task.teacher
    items = list(lab.annotate.items(task.name))
    for item in items:
        good = "A" if item.candidates[0].startswith("good") else "B"
        bad = "B" if good == "A" else "A"
        # People pick the bad answer on the first item, the good one elsewhere.
        lab.annotate.review(item.name, "ana", choice=bad if item is items[0] else good)
    expect_error("FAILED_PRECONDITION", lab.annotate.review, items[0].name, "bo", accept=True)
    done = lab.annotate.finish(task.name, into="picked")
    rows = list(lab.data.rows(lab.data.wait(lab.data.get_version(done.output_version)).name))
    assert [r["chosen"][0]["content"].split()[0] for r in rows] == ["bad", "good", "good"]
    error = expect_error("INVALID_ARGUMENT", lab.annotate.create, source, kind="label", labels=["only-one"])
    assert error.violations[0].field == "annotation_task.labels"
    error = expect_error("INVALID_ARGUMENT", lab.annotate.create, source, kind="correction")
    assert error.violations[0].field == "annotation_task.source"


def test_another_projects_key_reaches_no_teacher_run_or_task(  # type: ignore[no-untyped-def]
    lab: Client, suite: LocalSuite, keys, tmp_path: Path
) -> None:
    source = upload(lab, tmp_path, "private-questions", "eval", eval_rows(1))
    runs = [lab.augment.wait(lab.augment.run("answer", source, into="private", teacher="writer").name)]
    tasks = [lab.annotate.create(source, kind="score")]
    _, token = keys.create("someone-else", "member", "tenancy")
    with Client(suite.endpoints, api_key=token, project=lab.project) as other:
        for call in (
            lambda: other.augment.get_teacher("writer"),
            lambda: list(other.augment.teachers()),
            lambda: other.augment.get(runs[0].name),
            lambda: list(other.augment.list()),
            lambda: other.augment.cancel(runs[0].name),
            lambda: other.annotate.get(tasks[0].name),
            lambda: list(other.annotate.items(tasks[0].name)),
            lambda: other.annotate.review(f"{tasks[0].name}/items/1", "eve", reject=True),
            lambda: other.augment.delete_teacher("writer"),
        ):
            expect_error("PERMISSION_DENIED", call)
    with Client(suite.endpoints, api_key=token, project="someone-else") as other:
        # Its own run naming this project's data and teacher reaches neither.
        error = expect_error(
            "PERMISSION_DENIED",
            other.augment.run,
            "answer",
            source,
            into="mine",
            teacher="writer",
        )
        assert lab.project in error.message
    assert lab.augment.get_teacher("writer").deployment.endswith("/writer"), "still there"


def test_cli_drives_teachers_runs_and_annotation(lab: Client, suite: LocalSuite, tmp_path: Path) -> None:
    env = {**os.environ, "TUNEFORGE_HOME": str(suite.data_dir), "TUNEFORGE_API_KEY": suite.admin_key}
    env |= {"TUNEFORGE_PROJECT": lab.project, "COLUMNS": "200", "CLI_TEACHER_KEY": "sk-cli-secret"}

    def tf(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tuneforge", *args], env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == code, f"{args} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    source = upload(lab, tmp_path, "cli-questions", "eval", eval_rows(3))
    made = json.loads(
        tf("--json", "data", "teachers", "create", "cli-writer", "--deployment", "writer").stdout
    )
    assert made["model"] == "writer"
    keyed = json.loads(
        tf(
            "--json",
            "data",
            "teachers",
            "create",
            "cli-remote",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--api-key-env",
            "CLI_TEACHER_KEY",
        ).stdout
    )
    assert keyed["has_api_key"] and "sk-cli-secret" not in json.dumps(keyed)
    assert "sk-cli-secret" not in tf("data", "teachers", "list").stdout
    missing = tf(
        "data",
        "teachers",
        "create",
        "cli-x",
        "--base-url",
        "http://h/v1",
        "--model",
        "m",
        "--api-key-env",
        "NOT_SET_ANYWHERE",
        code=2,
    )
    assert "NOT_SET_ANYWHERE is not set" in missing.stderr
    assert "{{ prompt }}" in tf("data", "augment", "templates", "paraphrase").stdout
    run = json.loads(
        tf(
            "--json",
            "data",
            "augment",
            "run",
            "answer",
            source,
            "--into",
            "cli-answers",
            "--teacher",
            "cli-writer",
            "--param",
            "max_rows=2",
            "--filter",
            "exact_dedup=false",
            "--watch",
        ).stdout
    )
    assert run["state"] == "AUGMENTATION_STATE_SUCCEEDED" and int(run["progress"]["kept_rows"]) == 2
    shown = tf("data", "augment", "show", run["name"].rsplit("/", 1)[1]).stdout
    assert "2/2 done" in shown and "cli-answers" in shown
    failed = tf(
        "data",
        "augment",
        "run",
        "answer",
        source,
        "--into",
        "cli-answers",
        "--teacher",
        "cli-remote",
        "--watch",
        code=1,
    )
    assert "TEACHER_UNREACHABLE" in failed.stdout and failed.stderr.startswith("error: ")
    bad = tf(
        "data",
        "augment",
        "run",
        "answer",
        source,
        "--into",
        "x",
        "--teacher",
        "cli-writer",
        "--template",
        "answer={{ nope }}",
        code=1,
    )
    assert bad.stderr.count("\n") == 1 and "augmentation_run.templates[answer]" in bad.stderr

    task = json.loads(
        tf(
            "--json",
            "data",
            "annotate",
            "create",
            source,
            "--kind",
            "label",
            "--label",
            "good",
            "--label",
            "bad",
            "--wait",
        ).stdout
    )
    task_id = task["name"].rsplit("/", 1)[1]
    assert task["state"] == "ANNOTATION_STATE_REVIEWING"
    tf("data", "annotate", "review", task_id, "1", "--annotator", "ana", "--label", "good")
    tf("data", "annotate", "review", task_id, "2", "--annotator", "ana", "--label", "bad")
    assert "unreviewed" in tf("data", "annotate", "items", task_id).stdout
    finished_task = tf(
        "data", "annotate", "finish", task_id, "--into", "cli-labelled", "--keep-label", "good"
    ).stdout
    assert "1 rows" in finished_task
    assert [r["id"] for r in lab.data.rows("cli-labelled")] == [next(iter(lab.data.rows(source)))["id"]]
