"""The console's workflows past the core loop, in real headless Chromium: augmentation with a
teacher (the project's own serve service running the tiny model) and annotation review by two
people; the training form's method settings, resources and advanced hyperparameters, with the
server's errors under their fields and the audit log; a derivation drawn in the lineage."""

from __future__ import annotations

from pathlib import Path

from services.suite.suite import LocalSuite
from tests.console.pages import SHOTS, project_with_key, signed_in
from tests.data.test_augmentation import upload
from tuneforge import Client


def test_augment_with_a_teacher_then_review_its_labels_and_finish(
    browser: object, suite: LocalSuite, tiny_model_dir: Path, tmp_path: Path
) -> None:
    project, key = project_with_key(suite, "console-aug")
    with Client(suite.endpoints, api_key=key, project=project) as client:
        client.models.create("tiny")
        base = client.models.upload("tiny", tiny_model_dir).name
        client.serve.create("writer", base, max_tokens=12, temperature=0.0)
        sources = {
            "questions": (
                "eval",
                [{"prompt": f"What is {i} plus {i}?", "reference": str(2 * i)} for i in range(4)],
            ),
            "chats": (
                "sft",
                [
                    {
                        "messages": [
                            {"role": "user", "content": f"Name {i + 2} colours."},
                            {"role": "assistant", "content": "Red."},
                        ]
                    }
                    for i in range(4)
                ],
            ),
        }
        for name, (kind, records) in sources.items():
            upload(client, tmp_path, name, kind, records)
        client.serve.wait("writer", timeout=180)
    page = signed_in(browser, suite, project, key)
    console = suite.endpoints["console"]

    # Teachers: a URL that carries credentials is refused on its field; a deployment is taken.
    page.goto(console + "/augmentation")
    page.get_by_label("Teacher id", exact=True).fill("leaky")
    page.get_by_label("Base URL", exact=True).fill("http://user:secret@127.0.0.1:9/v1")
    page.get_by_label("Model", exact=True).fill("any")
    page.get_by_role("button", name="Create").click()
    page.locator("#teacher-url-error").wait_for()
    page.get_by_label("Base URL", exact=True).fill("")
    page.get_by_label("Model", exact=True).fill("")
    page.get_by_label("Teacher id", exact=True).fill("writer")
    page.get_by_label("Deployment of this project", exact=True).fill("writer")
    page.get_by_role("button", name="Create").click()
    teachers = page.get_by_role("table", name="Teachers")
    teachers.get_by_text("writer").first.wait_for()

    # An API teacher: its key is sent once; changing its limits and key keeps the key unseen; delete.
    page.get_by_label("Teacher id", exact=True).fill("external")
    page.get_by_label("Deployment of this project", exact=True).fill("")
    page.get_by_label("Base URL", exact=True).fill("http://127.0.0.1:9/v1")
    page.get_by_label("Model", exact=True).fill("big-model")
    page.get_by_label("API key", exact=True).fill("sk-first-secret")
    page.get_by_role("button", name="Create").click()
    teachers.get_by_text("big-model").wait_for()
    page.get_by_test_id("teacher-edit-external").click()
    page.locator("#edit-concurrency").fill("3")
    page.get_by_label("New API key (empty: keep the stored one)", exact=True).fill("sk-second-secret")
    page.get_by_role("button", name="Save").click()
    page.locator("#teacher-edit-title").wait_for(state="detached")
    with Client(suite.endpoints, api_key=key, project=project) as client:
        external = client.augment.get_teacher("external")
    assert external.max_concurrency == 3 and external.has_api_key and not external.api_key
    assert "secret" not in page.content()
    page.get_by_test_id("teacher-delete-external").click()
    teachers.get_by_text("big-model").wait_for(state="detached")
    page.get_by_label("Base URL", exact=True).fill("")
    page.get_by_label("Model", exact=True).fill("")
    page.get_by_label("API key", exact=True).fill("")

    # A run answers the questions with the teacher; its page follows it to the version it made.
    page.get_by_label("Source version", exact=True).fill("questions/1")
    page.get_by_label("Teacher", exact=True).select_option(label="writer")
    page.get_by_label("Into dataset", exact=True).fill("answered")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/augmentation/*")
    state = page.get_by_test_id("run-state")
    state.filter(has_text="SUCCEEDED").wait_for(timeout=180_000)
    assert "4/4" in page.get_by_test_id("run-rows").inner_text()
    assert "answered/versions/1" in state.get_by_role("link").inner_text()
    page.screenshot(path=str(SHOTS / "augmentation-run.png"), full_page=True)

    # An annotation task: the teacher pre-labels corrections, two people review them.
    page.goto(console + "/data?dataset=chats&version=1")
    page.get_by_role("button", name="Annotate this version").click()
    page.get_by_role("heading", name="New annotation task").wait_for()
    assert page.get_by_label("Source version", exact=True).input_value() == "chats/versions/1"
    page.get_by_label("Task id", exact=True).fill("fix-answers")
    page.get_by_label("What is labelled", exact=True).select_option(label="correction")
    page.get_by_label("Pre-label with", exact=True).select_option(label="writer")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/annotation/fix-answers")
    page.get_by_test_id("task-summary").filter(has_text="REVIEWING").wait_for(timeout=120_000)
    task = f"projects/{project}/annotationTasks/fix-answers"
    with Client(suite.endpoints, api_key=key, project=project) as client:
        labelled = [i for i in client.annotate.items(task) if i.HasField("model_value")]
    assert labelled, "the teacher pre-labelled some rows"
    accepted = labelled[-1].name.rsplit("/", 1)[1]
    assert accepted not in ("1", "2")
    page.get_by_label("Your name (annotator)", exact=True).fill("ana")

    def review(item: str, button: str, annotator: str = "ana") -> None:
        card = page.get_by_test_id(f"item-{item}")
        card.get_by_role("button", name=button).click()
        card.locator(".reviews").filter(has_text=annotator).wait_for()

    page.get_by_test_id("item-1").get_by_label("Your label", exact=True).fill("The right answer.")
    review("1", "Save my label")
    review("2", "Reject")
    review(accepted, "Accept")
    page.get_by_test_id("progress-reviewed").filter(has_text="3").wait_for()
    page.get_by_label("Your name (annotator)", exact=True).fill("bo")
    review(accepted, "Accept", "bo")
    page.get_by_test_id("reviewer-agreement").filter(has_text="100.0%").wait_for()
    with Client(suite.endpoints, api_key=key, project=project) as client:
        agreement = client.annotate.get(task).agreement
    shown = page.get_by_test_id("model-agreement").inner_text()
    assert (
        f"{agreement.model_agreement * 100:.1f}%" in shown and f"{agreement.model_reviews} reviews" in shown
    )
    page.screenshot(path=str(SHOTS / "annotation-review.png"), full_page=True)

    # Finishing writes the reviewed rows: the edit and the accepted label; the rejected row is gone.
    page.get_by_label("Into dataset", exact=True).fill("fixed")
    page.get_by_role("button", name="Finish", exact=True).click()
    page.get_by_test_id("task-summary").get_by_role("link").filter(has_text="fixed/versions/1").wait_for()
    with Client(suite.endpoints, api_key=key, project=project) as client:
        version = client.data.wait(client.data.get_version(f"projects/{project}/datasets/fixed/versions/1"))
        rows = list(client.data.rows(version.name))
        client.serve.delete("writer")
    answers = sorted(r["messages"][-1]["content"] for r in rows)
    assert len(rows) == 2 and "The right answer." in answers, answers
    # The overview lists both pieces of data work.
    page.goto(console + "/")
    work = page.get_by_role("table", name="Augmentation and annotation")
    work.get_by_role("link", name="fix-answers").wait_for()
    assert "FINISHED" in work.inner_text() and "SUCCEEDED" in work.inner_text()
    page.close()


def test_the_form_sends_the_methods_settings_and_shows_their_errors(
    browser: object, suite: LocalSuite, tiny_model_dir: Path, tmp_path: Path
) -> None:
    project, key = project_with_key(suite, "console-rl")
    with Client(suite.endpoints, api_key=key, project=project) as client:
        client.models.create("tiny")
        base = client.models.upload("tiny", tiny_model_dir).name
        prompts = [{"prompt": f"写一个数字：第{i}题", "reference": ""} for i in range(16)]
        upload(client, tmp_path, "prompts", "prompt_only", prompts)
    page = signed_in(browser, suite, project, key)
    page.goto(suite.endpoints["console"] + "/training/new")
    page.get_by_label("Job id", exact=True).fill("rl-job")
    page.get_by_label("Base model", exact=True).fill(base)
    page.get_by_label("Training data 1", exact=True).fill("prompts/1")
    page.get_by_test_id("data-state-0").filter(has_text="READY").wait_for()
    # Prompt-only data trains GRPO alone; its settings appear.
    page.get_by_role("group", name="Method settings").wait_for()
    assert page.locator("#job-method option:checked").inner_text() == "grpo"
    # A regex reward without its pattern, and groups that do not divide the batch: each error comes
    # back under its field.
    page.get_by_role("button", name="Add a reward").click()
    page.get_by_label("num_generations", exact=True).fill("3")
    page.get_by_text("Advanced hyperparameters").click()
    page.get_by_label("warmup_ratio", exact=True).fill("0.9")
    page.get_by_role("button", name="Start training").click()
    page.locator("#reward-0-pattern-error").filter(has_text="pattern").wait_for()
    assert "divide" in page.locator("#mp-num_generations-error").inner_text()
    assert "0.5" in page.locator("#adv-warmup_ratio-error").inner_text()
    page.get_by_label("warmup_ratio", exact=True).fill("0.1")
    page.get_by_label("scheduler", exact=True).select_option("cosine")
    page.get_by_label("seed", exact=True).fill("7")
    page.get_by_label("Pattern (regex)", exact=True).fill(r"\d+")
    page.get_by_label("num_generations", exact=True).fill("4")
    page.get_by_label("beta", exact=True).fill("0.05")
    page.get_by_label("loss_type", exact=True).select_option("dr_grpo")
    page.get_by_role("button", name="Add a reward").click()
    page.get_by_label("Reward 2", exact=True).select_option("word_count")
    page.get_by_label("Target words (0: the reference's length)", exact=True).fill("5")
    page.get_by_test_id("reward-1").get_by_label("Weight", exact=True).fill("0.5")
    # It asks for 2 CUDA devices, which no live worker (CPU only here) has: it waits, saying why.
    assert "cpu" in page.get_by_test_id("live-workers").inner_text()
    page.get_by_label("Devices per node", exact=True).fill("2")
    page.get_by_label("Device kind", exact=True).select_option("cuda")
    page.screenshot(path=str(SHOTS / "training-form-grpo.png"), full_page=True)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url("**/training/jobs/rl-job")
    page.get_by_text("no live worker with 2 cuda").wait_for()
    with Client(suite.endpoints, api_key=key, project=project) as client:
        job = client.train.get("rl-job")
        client.train.cancel("rl-job")
    assert (job.resources.accelerators_per_node, job.resources.accelerator_kind) == (2, "cuda")
    # The audit log keeps both calls: the refused one and the one that made the job.
    page.goto(suite.endpoints["console"] + "/keys")
    log = page.get_by_role("table", name="Audit log")
    log.get_by_text("INVALID_ARGUMENT").first.wait_for()
    assert "TrainService/CreateTrainingJob" in log.inner_text()
    page.get_by_label("State", exact=True).select_option("INVALID_ARGUMENT")
    page.wait_for_function(
        "() => [...document.querySelectorAll('table[aria-label=\"Audit log\"] tbody tr')]"
        ".every(row => row.innerText.includes('INVALID_ARGUMENT'))"
    )
    rows = log.locator("tbody tr")
    assert rows.count() >= 1 and "CreateTrainingJob" in rows.first.inner_text()
    hp = job.hyperparameters
    assert (round(hp.warmup_ratio, 6), hp.scheduler, hp.seed) == (0.1, "cosine", 7)
    sent = job.method_parameters
    assert (sent.num_generations, sent.beta, sent.loss_type) == (4, 0.05, "dr_grpo")
    assert [(r.type, r.pattern, r.target_words, r.weight) for r in sent.rewards] == [
        ("regex", r"\d+", 0, 1.0),  # no weight given: the default, 1
        ("word_count", "", 5, 0.5),
    ]
    page.close()


def test_a_version_is_quantized_from_its_page_and_drawn_in_the_lineage(
    browser: object, suite: LocalSuite, tiny_model_dir: Path
) -> None:
    project, key = project_with_key(suite, "console-derive")
    with Client(suite.endpoints, api_key=key, project=project) as client:
        client.models.create("tiny")
        client.models.upload("tiny", tiny_model_dir)
    page = signed_in(browser, suite, project, key)
    page.goto(suite.endpoints["console"] + "/models/tiny")
    page.get_by_role("button", name="Quantize int8").click()
    derivation = page.get_by_test_id("derivation")
    derivation.filter(has_text="SUCCEEDED").wait_for(timeout=180_000)
    derivation.get_by_role("link", name="tiny/versions/2").click()
    page.wait_for_url("**/models/tiny?version=2")
    graph = page.get_by_test_id("lineage-graph")
    graph.get_by_text("derived").wait_for()
    graph.get_by_text("quantize:int8").wait_for()  # how the new version was made, under its name
    assert graph.locator("g.node").count() == 2
    # The list of versions shows the new one without a reload.
    assert page.get_by_role("table").first.get_by_role("link", name="2", exact=True).count() == 1
    page.get_by_role("button", name="Download").click()
    page.locator(".downloads a").filter(has_text="safetensors").first.wait_for()
    page.screenshot(path=str(SHOTS / "model-derived-int8.png"), full_page=True)
    with Client(suite.endpoints, api_key=key, project=project) as client:
        derived = client.models.get_version(f"projects/{project}/models/tiny/versions/2")
    assert derived.lineage.parent_version.endswith("/models/tiny/versions/1")
    page.close()
