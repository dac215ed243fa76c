"""The create form speaks human (issue 17, points 1, 4 and 5): a fresh portal is offered
"Create a team"; field errors in words, only once a field was touched; live sizing that
sends every input the server uses and gives the server's verdict, the arithmetic behind
"details"; a review page in the form's own words; server refusals at their field, once;
and nothing submitted while the input is invalid."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from portal_backend.scaffolder.registration import register_shipped_templates
from tests.conftest import LiveServer
from tests.ui.conftest import login, snap
from tests.ui.seed import groups, seed

FORM = "/create/templates/default/rag-service"
MACHINE_WORDS = re.compile(r"missing the required property|does not match|\^\[a-z\]|Object is")


def _field(page: Page, page_index: int, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[name="p{page_index}[{name}]"]')


def _box(page: Page, page_index: int, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-schemapath="p{page_index}.{name}"]')


def _task_count(live_portal: LiveServer) -> int:
    with live_portal.client() as api:
        return api.get("/api/scaffolder/v2/tasks").json()["totalTasks"]


def _open_form(page: Page, live_portal: LiveServer, ui_db, with_groups: bool = True) -> None:  # type: ignore[no-untyped-def]
    if with_groups:
        seed(ui_db, groups())
    register_shipped_templates(live_portal.settings, ui_db)
    login(page, next_path=FORM)
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")


def test_a_portal_without_a_team_offers_to_create_one(
    page: Page, live_portal: LiveServer, ui_db
) -> None:
    """Point 1: with no Group the owner could not be chosen and the create was refused
    with "register the group first (POST /api/catalog/locations ...)"."""
    _open_form(page, live_portal, ui_db, with_groups=False)
    callout = page.locator("#no-team")
    expect(callout).to_contain_text("No team is registered yet")
    snap(page, "create-no-team")
    callout.get_by_role("link", name="Create a team").click()
    page.get_by_label("Name", exact=True).fill("Platform Team")
    page.get_by_role("button", name="Create team").click()
    # Refused in words, at the field, and nothing created.
    name = page.get_by_label("Name", exact=True)
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#team-name-error")).to_contain_text("lowercase letters")
    name.fill("platform")
    page.get_by_label("Display name (optional)").fill("Platform team")
    page.get_by_role("button", name="Create team").click()
    # Back on the form, the new team offered by its title.
    expect(page).to_have_url(re.compile(re.escape(FORM)))
    expect(page.locator("#team-created")).to_contain_text("Team platform created")
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    expect(page.locator("#no-team")).to_have_count(0)
    owner = _field(page, 0, "owner")
    expect(owner.locator("option")).to_have_text(["Platform team"])
    assert owner.input_value() == "group:default/platform"
    # The team is a file in its own repository on this portal, browsable.
    response = page.goto("/repos/platform/_catalog/blob/main/catalog-info.yaml")
    assert response is not None and response.status == 200
    expect(page.locator("#file")).to_contain_text("kind: Group")


def test_field_errors_are_words_shown_once_a_field_is_touched(
    page: Page, live_portal: LiveServer, ui_db
) -> None:
    """Point 5: the name error was the raw regex, "Object is missing the required property
    'Name'" showed before anything was typed, and "Please fix the highlighted fields"
    highlighted nothing."""
    _open_form(page, live_portal, ui_db)
    expect(page.locator(".field-error")).to_have_count(0)
    expect(page.get_by_text(MACHINE_WORDS).filter(visible=True)).to_have_count(0)
    # The owner picker shows teams by name, not refs.
    options = _field(page, 0, "owner").locator("option")
    expect(options).to_have_text(["team-a", "team-b"])

    name = _field(page, 0, "name")
    name.fill("Bad_Name")
    name.press("Tab")
    error = _box(page, 0, "name").locator(".field-error")
    expect(error).to_have_text(
        "Use lowercase letters, digits and dashes; start with a letter and end with a "
        "letter or digit."
    )
    expect(error).to_be_visible()
    expect(name).to_have_attribute("aria-invalid", "true")
    described_by = name.get_attribute("aria-describedby") or ""
    assert error.get_attribute("id") in described_by.split()
    # Untouched fields say nothing yet.
    expect(page.locator(".field-error")).to_have_count(1)
    snap(page, "create-invalid-name")

    name.fill("")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 1 of 5")
    expect(error).to_have_text("Give the service a name.")
    # The banner names the fields (links to them); the words are at the fields.
    banner = page.locator("#form-errors")
    expect(banner).to_contain_text("1 field needs attention")
    banner.get_by_role("link", name="Name").click()
    expect(name).to_be_focused()
    expect(page.get_by_text(MACHINE_WORDS).filter(visible=True)).to_have_count(0)

    name.fill("good-bot")
    name.press("Tab")
    expect(page.locator(".field-error")).to_have_count(0)
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 2 of 5: Documents")
    # An item of a list is checked against its own rule, in words too.
    urls = _box(page, 1, "source_urls")
    urls.get_by_role("button", name=re.compile("Add")).first.click()
    _field(page, 1, "source_urls][0").fill("ftp://docs.example/handbook.pdf")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 2 of 5")
    expect(_box(page, 1, "source_urls.0").locator(".field-error")).to_contain_text(
        "Not in the expected form"
    )
    assert _task_count(live_portal) == 0


def test_live_sizing_sends_every_input_and_gives_the_servers_verdict(
    page: Page, live_portal: LiveServer, ui_db
) -> None:
    """Point 4: with "GPUs per replica, at most" = 1, 70B bf16 on L4 showed a green
    "Fits, 8 GPUs" (max_gpus was not sent); the server then refused with a 400-character
    message shown twice, while the panel still said Fits."""
    _open_form(page, live_portal, ui_db)
    _field(page, 0, "name").fill("big-bot")
    _field(page, 0, "owner").select_option(label="team-b")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 3 of 5: Model and GPUs")
    sizing = page.locator("#sizing")
    expect(sizing.locator(".sizing-verdict")).to_have_text(re.compile("^Fits: 1 × L4"))

    _field(page, 2, "model").select_option("llama-3-70b-instruct")
    _field(page, 2, "max_gpus").select_option("1")
    verdict = sizing.locator(".sizing-verdict")
    expect(verdict).to_have_text(re.compile(r"^Does not fit on 1 × L4: needs 143\.8 GB"))
    # The arithmetic is there, behind "details".
    details = sizing.locator("details")
    expect(details).not_to_have_attribute("open", "")
    expect(details.get_by_text("needed 143.78 GB")).not_to_be_visible()
    details.locator("summary").click()
    expect(details.get_by_text("needed 143.78 GB")).to_be_visible()
    expect(sizing).to_contain_text("8 × L4, bf16 (raise “GPUs per model replica, at most”)")
    # The same verdict at the GPU class field, once, in one sentence.
    gpu_errors = page.locator('.field-error[data-for="p2.gpu_class"]')
    expect(gpu_errors).to_have_count(1)
    expect(gpu_errors).to_be_visible()
    expect(gpu_errors).to_have_text(re.compile(r"^Does not fit on 1 × L4.*See GPU sizing"))
    snap(page, "create-sizing")

    # Allowing 8 GPUs fits (the server's arithmetic): the field's error goes.
    _field(page, 2, "max_gpus").select_option("8")
    expect(verdict).to_have_text(re.compile("^Fits: 8 × L4"))
    expect(gpu_errors).to_have_count(0)

    # Back to 1: the review says the server would refuse, and Create is refused at the
    # GPU field (on its page), said once; no task exists.
    _field(page, 2, "max_gpus").select_option("1")
    expect(verdict).to_have_text(re.compile("^Does not fit"))
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 5 of 5: Review")
    expect(page.locator("#review-status")).to_contain_text("would refuse")
    expect(page.locator("#form-errors").get_by_role("link", name="GPU class")).to_be_visible()
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#progress")).to_contain_text("Step 3 of 5")
    expect(gpu_errors).to_have_count(1)
    expect(gpu_errors).to_be_visible()
    # The server's long arithmetic is in the panel's details only, not at the field or
    # in the banner.
    form = page.locator("[data-page], #form-errors")
    expect(form.get_by_text(re.compile("does not fit on 1 x L4"))).to_have_count(0)
    expect(verdict).to_have_text(re.compile("^Does not fit"))
    snap(page, "create-server-error")
    assert _task_count(live_portal) == 0


def test_review_page_uses_the_forms_labels_and_words(
    page: Page, live_portal: LiveServer, ui_db
) -> None:
    """Point 5: the review showed [], enum ids, true/false and group refs."""
    _open_form(page, live_portal, ui_db)
    _field(page, 0, "name").fill("kind-bot")
    _field(page, 0, "owner").select_option(label="team-b")
    for _ in range(4):
        page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 5 of 5: Review")
    review = page.locator("#review-values")

    def value(label: str):  # type: ignore[no-untyped-def]
        return review.locator(f'dt:text-is("{label}") + dd')

    expect(value("Owner")).to_have_text("team-b")
    expect(value("Model")).to_have_text("Llama 3 8B Instruct")
    expect(value("Include the example corpus")).to_have_text("No")
    expect(value("CPU fallback (llama.cpp) when the GPU endpoint fails")).to_have_text("Yes")
    expect(value("PDF or HTML URLs")).to_have_text("None")
    expect(value("Monthly budget (USD)")).to_have_text("1,000")
    expect(review.locator("h3")).to_have_text(
        ["Service", "Documents", "Model and GPUs", "SLO and budget"]
    )
    text = review.inner_text()
    for machine in ("[]", "true", "false", "group:default/", "llama-3-8b-instruct"):
        assert machine not in text, f"{machine!r} on the review page"
    expect(page.locator("#review-status")).to_contain_text("Ready to create")
    snap(page, "create-review")
