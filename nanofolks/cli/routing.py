"""`nanofolks routing status | test | analytics`: the tiers, how a message would be routed, what routing saved."""

from __future__ import annotations

import typer

from nanofolks.cli.common import console, open_services, print_json

app = typer.Typer(help="Tier routing: each message to the model of its tier.", no_args_is_help=True)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Whether routing is on, each tier's model, the classifier, and the tier each room sits on."""
    from nanofolks.config.schema import TIERS
    from nanofolks.routing.tiers import cheapest_model, tier_model
    from nanofolks.store.routing import RoutingRepo

    services = open_services()
    config = services.config
    default = config.agents.defaults.model
    tiers = {t: {"model": tier_model(config, t) or default, "configured": bool(tier_model(config, t))} for t in TIERS}
    classifier = config.routing.llm_classifier
    rooms = RoutingRepo(services.db).room_tiers()
    data = {
        "enabled": config.routing.enabled,
        "tiers": tiers,
        "cheapest_model": cheapest_model(config),
        "llm_classifier": {"enabled": classifier.enabled, "timeout": classifier.timeout},
        "rooms": {name: tier for name, tier, _ in rooms},
    }
    if as_json:
        print_json(data)
        return
    if not config.routing.enabled:
        console.print("routing  off: every bot uses its own model "
                      "(`nanofolks config set routing.enabled true` and a model per tier turn it on)", highlight=False)
        return
    console.print("routing  on", highlight=False)
    for tier, info in tiers.items():
        console.print(f"  {tier:<10} {info['model']}" + ("" if info["configured"] else "  (no model: the bot's own)"),
                      highlight=False)
    state = f"on, {classifier.timeout:g} s timeout, model {data['cheapest_model']}" if classifier.enabled else "off"
    console.print(f"layer 2  {state}", highlight=False)
    for name, tier, _ in rooms:
        console.print(f"  #{name:<18} {tier}", highlight=False)


@app.command("test")
def test(
    message: str = typer.Argument(..., help="The message to classify."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The tier a message would get (layer 1; layer 2 when layer 1 is unsure and the classifier is on)."""
    import asyncio

    from nanofolks.routing.router import Router
    from nanofolks.store.routing import RoutingRepo

    services = open_services()
    decision = asyncio.run(Router(services.config, services.llm, RoutingRepo(services.db)).classify(message))
    model = services.llm.model_for("", decision.tier)
    data = {"tier": decision.tier, "layer": decision.layer, "confidence": decision.confidence, "model": model}
    if as_json:
        print_json(data)
        return
    how = "the rules" if decision.layer == 1 else "the classifier model"
    console.print(f"{decision.tier}  (layer {decision.layer}, {how}, confidence {decision.confidence:.2f}) -> {model}",
                  highlight=False)


@app.command("analytics")
def analytics(
    days: int = typer.Option(7, "--days", min=1, max=3660, help="How many days back, today included."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Calls, tokens and cost per tier and day, beside the same tokens on the top tier's model."""
    from nanofolks.routing.analytics import analytics as measure

    services = open_services()
    data = measure(services.config, services.usage, days)
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"model calls since {data['since']} (top model: {data['top_model']})")
    for column in ("day", "tier", "model", "calls", "tokens in", "tokens out", "cost $", "on top model $"):
        table.add_column(column, justify="right" if column not in ("day", "tier", "model") else "left")
    for row in data["rows"]:
        top = "?" if row["top_cost"] is None else f"{row['top_cost']:.4f}"
        cost = "no price" if row["unpriced"] else f"{row['cost']:.4f}"
        table.add_row(row["day"], row["tier"], row["model"], str(row["calls"]), str(row["prompt_tokens"]),
                      str(row["completion_tokens"]), cost, top)
    console.print(table)
    total = data["total"]
    if not data["rows"]:
        console.print("no model calls in this period", highlight=False)
    elif total["savings"] is not None:
        pct = f" ({total['savings_pct']:.1f}%)" if total["savings_pct"] is not None else ""
        console.print(f"cost ${total['cost']:.4f}; the same tokens on {data['top_model']}: ${total['top_cost']:.4f}; "
                      f"saved ${total['savings']:.4f}{pct}", highlight=False)
    for note in data["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
