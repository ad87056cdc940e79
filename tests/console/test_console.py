"""The browser console in real headless Chromium (Debian's, driven by Playwright through its
executablePath), against the suite's console process and services: sign-in and project walls,
uploads with their row errors, a job from a template with its live loss and diagnosis, base vs
tuned, blind rating, aliases, and a chat with a deployment. Screenshots go to build/console-screenshots/."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from services.suite.suite import LocalSuite
from tests.console.pages import NARROW, SHOTS, WIDE, project_with_key, signed_in, unlabelled
from tests.data.test_augmentation import upload
from tuneforge import Client


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
        essays = [{"prompt": f"第{i}篇作文。", "reference": "最终得分：40"} for i in range(4)]
        eval_version = upload(client, tmp_path, "small-eval", "eval", essays)
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
