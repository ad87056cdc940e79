"""The browser console in real headless Chromium (Debian's, driven by Playwright through its
executablePath), against the suite's console process and services: sign-in and project walls,
uploads with their row errors, a job from a template with its live loss and diagnosis, base vs
tuned, blind rating, aliases, and a chat with a deployment. Screenshots go to build/console-screenshots/."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from services.suite.suite import LocalSuite
from tuneforge import Client

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "console-screenshots"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        found = subprocess.run(
            [str(ROOT / "tools" / "ensure_chromium.sh")], capture_output=True, text=True
        ).stdout.strip()
    if not found:
        pytest.fail(
            "Chromium is missing: run tools/ensure_chromium.sh (as root) or install Debian's chromium"
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (ROOT / "console" / "dist" / "index.html").exists():
        pytest.fail("the console is not built: `make console` (npm ci && npm run build in console/)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def project_with_key(suite: LocalSuite, prefix: str, role: str = "admin") -> tuple[str, str]:
    project = f"{prefix}-{uuid.uuid4().hex[:6]}"
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as client:
        client.iam.create_project(project)
        return project, client.iam.create_key(role, display_name="console test").token


def signed_in(browser: object, suite: LocalSuite, project: str, key: str, viewport: dict = WIDE) -> object:
    page = browser.new_page(viewport=viewport)  # type: ignore[attr-defined]
    page.goto(suite.endpoints["console"] + "/")
    page.get_by_label("Language", exact=True).select_option("en")
    page.get_by_label("Project", exact=True).fill(project)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()
    return page


def unlabelled(page: object) -> list[str]:
    """Form fields no label names (by `for`, by wrapping, or aria-label)."""
    return page.evaluate(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map(el => el.outerHTML.slice(0, 120))"""
    )


def test_bad_keys_get_the_sign_in_prompt_and_other_projects_stay_walled(
    browser: object, suite: LocalSuite
) -> None:
    team_a, key_a = project_with_key(suite, "console-a")
    team_b, _ = project_with_key(suite, "console-b")
    with Client(suite.endpoints, api_key=key_a, project=team_a) as client:
        client.models.create("secret-model")
    page = browser.new_page(viewport=WIDE)  # type: ignore[attr-defined]
    page.goto(suite.endpoints["console"] + "/models")
    page.get_by_label("Language", exact=True).select_option("en")
    # No key: the sign-in prompt, never a blank page.
    page.get_by_role("heading", name="Sign in to your project").wait_for()
    assert not unlabelled(page)
    page.get_by_label("Project", exact=True).fill(team_a)
    page.get_by_label("API key", exact=True).fill("tf_wrong_" + "x" * 30)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="refused").wait_for()
    page.screenshot(path=str(SHOTS / "sign-in-refused.png"))
    # A's key named with project B: refused as another project's.
    page.get_by_label("Project", exact=True).fill(team_b)
    page.get_by_label("API key", exact=True).fill(key_a)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="another project").wait_for()
    # Signed in to A, the page cannot reach B's resources.
    page.get_by_label("Project", exact=True).fill(team_a)
    page.get_by_role("button", name="Sign in").click()
    # Signed in, the page asked for comes up.
    page.get_by_role("link", name="secret-model").wait_for()
    page.evaluate(
        "s => sessionStorage.setItem('tuneforge.session', JSON.stringify(s))",
        {"apiKey": key_a, "project": team_b},
    )
    page.goto(suite.endpoints["console"] + "/models")
    page.get_by_role("alert").filter(has_text="PermissionDenied").wait_for()
    assert "secret-model" not in page.content()
    # A key revoked while the page is open sends the page back to the sign-in prompt.
    page.evaluate(
        "s => sessionStorage.setItem('tuneforge.session', JSON.stringify(s))",
        {"apiKey": "tf_revoked_" + "y" * 30, "project": team_a},
    )
    page.goto(suite.endpoints["console"] + "/data")
    page.get_by_role("heading", name="Sign in to your project").wait_for()
    page.close()


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280px", "390px"])
def test_every_page_works_wide_and_narrow_in_both_languages(
    browser: object, suite: LocalSuite, viewport: dict
) -> None:
    project, key = project_with_key(suite, "console-pages")
    page = signed_in(browser, suite, project, key, viewport)
    for path, heading in [
        ("/", "Overview"),
        ("/data", "Data"),
        ("/augmentation", "Augmentation"),
        ("/annotation", "Annotation"),
        ("/templates", "Templates"),
        ("/training/new", "New job"),
        ("/evaluation", "Evaluation"),
        ("/models", "Models"),
        ("/deployments", "Deployments"),
        ("/keys", "API keys"),
    ]:
        page.goto(suite.endpoints["console"] + path)
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        assert not unlabelled(page), (path, unlabelled(page))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"] + 1, f"{path} scrolls sideways at {viewport['width']} px ({width})"
    page.get_by_label("Language", exact=True).select_option("zh")
    page.get_by_role("heading", name="API Key").wait_for()
    page.goto(suite.endpoints["console"] + "/templates")
    page.get_by_role("heading", name="精调样板间").wait_for()
    page.get_by_text("使用此样板").first.wait_for()
    page.screenshot(path=str(SHOTS / f"templates-zh-{viewport['width']}.png"), full_page=True)
    page.close()


def test_uploads_show_bad_rows_by_line_and_field_then_clean_and_mix(
    browser: object, suite: LocalSuite, tmp_path: Path
) -> None:
    project, key = project_with_key(suite, "console-data")
    broken = tmp_path / "broken.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    broken.write_text(
        "\n".join(
            [
                json.dumps(good),
                '{"messages": [{"role": "user", "content": "no closing brace"}',
                json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
                json.dumps(
                    {"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}
                ),
            ]
        )
        + "\n"
    )
    page = signed_in(browser, suite, project, key)
    page.get_by_role("link", name="Data").first.click()
    page.get_by_label("Dataset to upload into", exact=True).fill("chats")
    page.get_by_label("File", exact=True).set_input_files(str(broken))
    page.get_by_role("button", name="Upload a file").click()
    table = page.get_by_role("table", name="Rows that failed validation").first
    table.wait_for(timeout=60_000)
    rows = table.locator("tbody tr")
    cells = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]
    assert [(c[0], c[1]) for c in cells] == [
        ("broken.jsonl", "2"),
        ("broken.jsonl", "3"),
        ("broken.jsonl", "4"),
    ], cells
    assert any("role" in c[3] for c in cells), cells
    assert "FAILED" in page.get_by_test_id("version-summary").first.inner_text()
    page.screenshot(path=str(SHOTS / "upload-row-errors.png"), full_page=True)
    # A good file (one row twice) makes version 2; cleaning it counts what each step did.
    fine = tmp_path / "fine.jsonl"
    other = {"messages": [{"role": "user", "content": "bye"}, {"role": "assistant", "content": "see you"}]}
    fine.write_text("".join(json.dumps(row) + "\n" for row in (good, good, other)))
    page.get_by_label("File", exact=True).set_input_files(str(fine))
    page.get_by_role("button", name="Upload a file").click()
    page.get_by_test_id("version-summary").filter(has_text="READY").first.wait_for(timeout=60_000)
    page.get_by_role("link", name="2", exact=True).click()
    page.get_by_role("button", name="Clean into a new version").click()
    cleaning = page.get_by_role("table", name="Cleaning, per step").first
    cleaning.wait_for(timeout=60_000)
    steps = {
        r.locator("td").nth(0).inner_text(): r.locator("td").nth(2).inner_text()
        for r in cleaning.locator("tbody tr").all()
    }
    assert steps.get("exact_dedup") == "1", steps
    # The mixing plan, as the seed shows it, then the mixture as a version of its own.
    page.get_by_label("Version 1", exact=True).fill("chats/3")
    page.get_by_label("Rate", exact=True).fill("2")
    page.get_by_role("button", name="Plan", exact=True).click()
    plan = page.get_by_role("table", name="Mixing plan")
    plan.wait_for()
    assert [h.strip() for h in plan.locator("th").all_inner_texts()] == [
        "数据集 Dataset",
        "字符数 Characters",
        "样本数 Samples",
        "采样率 Sampling rate",
        "数据占比 Share",
    ]
    assert plan.locator("tbody td").all_inner_texts()[2:5] == ["2", "2", "100.0%"]
    page.get_by_label("Into dataset (a new version)", exact=True).fill("mixed")
    page.get_by_role("button", name="Make the mixture").click()
    page.get_by_test_id("version-summary").filter(has_text="mixed/versions/1").wait_for(timeout=60_000)
    page.close()


def test_from_template_to_a_chat_with_the_tuned_model(
    browser: object, suite: LocalSuite, tiny_model_dir: Path, tmp_path: Path
) -> None:
    project, key = project_with_key(suite, "console-flow")
    with Client(suite.endpoints, api_key=key, project=project) as client:
        client.models.create("tiny")
        base = client.models.upload("tiny", tiny_model_dir).name
        client.data.create("small-eval", "eval")
        rows = tmp_path / "small-eval.jsonl"
        rows.write_text(
            "".join(
                json.dumps({"prompt": f"第{i}篇作文。", "reference": "最终得分：40"}, ensure_ascii=False)
                + "\n"
                for i in range(4)
            )
        )
        eval_version = client.data.upload("small-eval", rows).name
    page = signed_in(browser, suite, project, key)
    # The essay-grading template fills the training form.
    page.get_by_role("link", name="Templates").first.click()
    page.get_by_test_id("preset-essay-grading").get_by_role("button", name="Start from this template").click()
    page.get_by_role("heading", name="New job").wait_for()
    data_field = page.get_by_label("Training data 1", exact=True)
    page.wait_for_function(
        "() => document.querySelector('#job-data-0').value.includes('essay-grading-train')", timeout=60_000
    )
    assert "essay-grading-train" in data_field.input_value()
    # The template's data is processed in the background: the form shows its state and holds the
    # job back until it is READY (the server refuses a version still processing).
    data_state = page.get_by_test_id("data-state-0")
    data_state.wait_for()
    if "PROCESSING" in data_state.inner_text():
        assert page.get_by_role("button", name="Start training").is_disabled()
    data_state.filter(has_text="READY").wait_for(timeout=240_000)
    assert page.get_by_label("Method", exact=True).input_value() == str(
        2
    )  # sft, the only method SFT data trains
    page.get_by_label("Job id", exact=True).fill("console-job")
    page.get_by_label("Base model", exact=True).fill(base)
    # A bad value comes back from the server on the field it names.
    page.get_by_label("learning_rate", exact=True).fill("-1")
    page.get_by_role("button", name="Start training").click()
    page.locator("#hp-learning_rate-error").wait_for()
    page.screenshot(path=str(SHOTS / "training-form-field-error.png"), full_page=True)
    page.get_by_label("learning_rate", exact=True).fill("0.002")
    page.get_by_label("epochs", exact=True).fill("1")
    page.get_by_label("batch_size", exact=True).fill("16")
    page.get_by_label("checkpoint_interval_steps", exact=True).fill("5")
    page.get_by_role("button", name="Start training").click()
    # The job's page: the live loss, then the end with its diagnosis.
    try:
        page.wait_for_url("**/training/jobs/console-job")
    except PlaywrightTimeout:
        pytest.fail(f"the job was not created: {page.locator('form .error').all_inner_texts()}")
    page.locator("svg[aria-label='Loss'] polyline").first.wait_for(timeout=240_000)
    page.get_by_test_id("diagnosis").wait_for(timeout=300_000)
    assert "SUCCEEDED" in page.get_by_test_id("job-state").inner_text()
    page.screenshot(path=str(SHOTS / "job-loss-and-diagnosis.png"), full_page=True)
    tuned = page.get_by_test_id("job-state").get_by_role("link").inner_text().strip()
    # Base against tuned on the small eval set, side by side.
    page.goto(suite.endpoints["console"] + "/evaluation")
    page.get_by_label("Model versions (one per line)", exact=True).fill(f"{base}\n{tuned}")
    page.get_by_label("Evaluation dataset version", exact=True).fill(eval_version)
    page.get_by_role("button", name="Create").click()
    table = page.get_by_role("table", name="Compare")
    table.wait_for(timeout=300_000)
    page.get_by_test_id("evaluation-state").filter(has_text="SUCCEEDED").wait_for(timeout=300_000)
    assert table.locator("tbody tr").count() == 2
    assert "+" in table.inner_text() or "-" in table.locator("tbody tr").nth(1).inner_text()
    page.screenshot(path=str(SHOTS / "evaluation-compare.png"), full_page=True)
    # Blind A/B: rate two samples.
    page.get_by_role("button", name="Create a blind rating task").click()
    page.get_by_label("Your name", exact=True).fill("rater-1")
    items = page.locator("[data-testid^='rate-']")
    items.first.wait_for()
    for i in range(2):
        items.nth(i).get_by_role("button", name="Answer A").click()
        items.nth(i).get_by_role("status").wait_for()
    page.get_by_test_id("rating-summary").filter(has_text="Ratings: 2").wait_for()
    page.screenshot(path=str(SHOTS / "rating-side-by-side.png"), full_page=True)
    # An alias on the tuned version, and the lineage drawn.
    model_id = tuned.split("/")[3]
    page.goto(suite.endpoints["console"] + f"/models/{model_id}")
    page.get_by_label("Alias", exact=True).fill("production")
    page.get_by_role("button", name="Set alias").last.click()
    page.get_by_role("status").filter(has_text="production").wait_for()
    page.get_by_test_id("lineage-graph").wait_for()
    graph = page.get_by_test_id("lineage-graph")
    assert graph.locator("g.node").count() >= 3  # the base, the training data, the tuned version
    assert graph.locator("g.node.data").count() >= 1
    page.screenshot(path=str(SHOTS / "model-alias-lineage.png"), full_page=True)
    # Serve it and chat, streamed, with feedback.
    page.goto(suite.endpoints["console"] + "/deployments")
    page.get_by_label("Deployment id", exact=True).fill("grader")
    page.get_by_label("Model version", exact=True).fill(tuned)
    page.get_by_role("button", name="Deploy").last.click()
    page.wait_for_url("**/deployments/grader")
    page.get_by_text("READY").first.wait_for(timeout=180_000)
    page.get_by_label("Your message", exact=True).fill("请给这篇作文打分：春天来了。")
    page.get_by_role("button", name="Send").click()
    page.get_by_role("button", name="Good answer").wait_for(timeout=120_000)
    answer = page.locator(".turn.assistant p").first.inner_text()
    assert answer.strip(), "the streamed answer arrived"
    page.get_by_role("button", name="Good answer").click()
    page.get_by_role("status").filter(has_text="recorded").wait_for()
    page.screenshot(path=str(SHOTS / "playground-chat.png"), full_page=True)
    with Client(suite.endpoints, api_key=key, project=project) as client:
        logs = list(client.serve.logs("grader"))
        assert any(log.feedback.rating == 1 for log in logs), "the feedback reached the call log"
        client.serve.delete("grader")
    page.close()


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
            client.data.create(name, kind)
            path = tmp_path / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
            client.data.upload(name, path)
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
    page.get_by_role("table", name="Teachers").get_by_text("writer").first.wait_for()

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
    page.close()


def test_the_form_sends_the_methods_settings_and_shows_their_errors(
    browser: object, suite: LocalSuite, tiny_model_dir: Path, tmp_path: Path
) -> None:
    project, key = project_with_key(suite, "console-rl")
    with Client(suite.endpoints, api_key=key, project=project) as client:
        client.models.create("tiny")
        base = client.models.upload("tiny", tiny_model_dir).name
        client.data.create("prompts", "prompt_only")
        path = tmp_path / "prompts.jsonl"
        path.write_text(
            "".join(json.dumps({"prompt": f"写一个数字：第{i}题", "reference": ""}) + "\n" for i in range(16))
        )
        client.data.upload("prompts", path)
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


def grpc_web(
    suite: LocalSuite, path: str, body: bytes, content_type: str = "application/grpc-web+proto"
) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        suite.endpoints["console"] + path, data=body, headers={"content-type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_gateway_forwards_calls_and_refuses_what_it_cannot(suite: LocalSuite) -> None:
    project, key = project_with_key(suite, "console-gw")
    empty = b"\x00\x00\x00\x00\x00"
    # No such method, a body that is not gRPC-Web, broken framing, two messages to a unary call.
    assert grpc_web(suite, "/tuneforge.registry.v1.RegistryService/Nope", empty)[1]["grpc-status"] == "12"
    assert (
        grpc_web(suite, "/tuneforge.registry.v1.RegistryService/ListModels", b"{}", "application/json")[0]
        == 415
    )
    assert (
        grpc_web(suite, "/tuneforge.registry.v1.RegistryService/ListModels", b"\x00\x00\x00\x00\x10ab")[1][
            "grpc-status"
        ]
        == "3"
    )
    assert (
        grpc_web(suite, "/tuneforge.registry.v1.RegistryService/ListModels", empty * 2)[1]["grpc-status"]
        == "3"
    )
    # Forwarded: without a key the service itself refuses, in the trailer frame.
    status, _, body = grpc_web(suite, "/tuneforge.registry.v1.RegistryService/ListModels", empty)
    assert status == 200 and body[0] == 0x80 and b"grpc-status: 16" in body
    # With the key, the message comes back byte for byte as the service wrote it.
    from tuneforge.registry.v1 import registry_service_pb2

    request = registry_service_pb2.ListModelsRequest(parent=f"projects/{project}").SerializeToString()
    framed = b"\x00" + len(request).to_bytes(4, "big") + request
    answer = urllib.request.Request(
        suite.endpoints["console"] + "/tuneforge.registry.v1.RegistryService/ListModels",
        data=framed,
        headers={"content-type": "application/grpc-web+proto", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(answer, timeout=30) as response:
        body = response.read()
    length = int.from_bytes(body[1:5], "big")
    assert (
        body[0] == 0 and registry_service_pb2.ListModelsResponse.FromString(body[5 : 5 + length]) is not None
    )
    assert b"grpc-status: 0" in body[5 + length :]
