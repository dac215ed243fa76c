"""The create form's LoRA field picks from the catalog (issue 20), in a browser: the
select under the LoRA list offers the adapter versions trained on the chosen model, follows
a change of model, and a choice fills an entry that the review shows."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from portal_backend.scaffolder.registration import register_shipped_templates
from tests.conftest import LiveServer
from tests.models.adapters import adapter_entity, model_entity
from tests.ui.accessibility import axe_violations
from tests.ui.conftest import login
from tests.ui.seed import groups, seed

FORM = "/create/templates/default/rag-service"


def test_lora_field_offers_the_catalogs_adapters_for_the_chosen_model(
    page: Page, live_portal: LiveServer, ui_db
) -> None:  # type: ignore[no-untyped-def]
    seed(
        ui_db,
        [
            *groups(),
            model_entity("llama-3-8b-v1", "1", "meta-llama/Meta-Llama-3-8B-Instruct"),
            model_entity("llama-3-70b-v1", "1", "meta-llama/Meta-Llama-3-70B-Instruct"),
            *(
                adapter_entity(
                    f"hr-adapter-v{v}",
                    v,
                    f"/srv/adapters/hr/{v}",
                    rank=r,
                    alpha=2 * r,
                    modules=["q_proj"],
                    base="resource:default/llama-3-8b-v1",
                )  # fmt: skip
                for v, r in (("1", 8), ("2", 32))
            ),
            adapter_entity(
                "legal-adapter-v1",
                "1",
                "/srv/adapters/legal/1",
                rank=16,
                alpha=32,
                modules=["q_proj"],
                base="resource:default/llama-3-70b-v1",
            ),  # fmt: skip
        ],
    )
    register_shipped_templates(live_portal.settings, ui_db)
    login(page, next_path=FORM)
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    page.locator('[name="p0[name]"]').fill("hr-bot")
    page.locator('[name="p0[owner]"]').select_option(label="team-a")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Model and GPUs")

    picker = page.get_by_label("Add an adapter from the catalog")
    options = picker.locator("option")
    expect(options).to_have_count(3)  # the prompt, then v2 and v1 (newest first)
    expect(options.nth(1)).to_contain_text("hr-adapter v2 (rank 32)")
    page.locator('[name="p2[model]"]').select_option("llama-3-70b-instruct")
    expect(options).to_have_count(2)
    expect(options.nth(1)).to_contain_text("legal-adapter v1")
    page.locator('[name="p2[model]"]').select_option("llama-3-8b-instruct")
    expect(options).to_have_count(3)

    picker.select_option("resource:default/hr-adapter-v2")
    expect(page.locator('[name="p2[lora_adapters][0][name]"]')).to_have_value("hr-adapter")
    expect(page.locator('[name="p2[lora_adapters][0][source]"]')).to_have_value(
        "/srv/adapters/hr/2"
    )
    expect(page.locator('[name="p2[lora_adapters][0][rank]"]')).to_have_value("32")
    expect(page.locator('[name="p2[lora_adapters][0][version]"]')).to_have_value(
        "resource:default/hr-adapter-v2"
    )
    # Picking the other version of the same adapter replaces the entry.
    picker.select_option("resource:default/hr-adapter-v1")
    expect(page.locator('[name="p2[lora_adapters][0][version]"]')).to_have_value(
        "resource:default/hr-adapter-v1"
    )
    expect(page.locator('[name="p2[lora_adapters][1][name]"]')).to_have_count(0)
    # The picker passes axe-core's rules with the page (label, live status).
    assert axe_violations(page) == []
