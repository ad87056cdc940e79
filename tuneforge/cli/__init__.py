"""The `tuneforge` command line. `--json` on any command prints machine-readable output; a user
mistake prints one line starting with `error:` and exits with status 1 (2 for usage errors)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tuneforge import telemetry
from tuneforge.cli import data, evals, models, projects, quickstart, serve, suite, train
from tuneforge.cli.output import Options, err_console
from tuneforge.errors import TuneForgeError

app = typer.Typer(
    name="tuneforge",
    help="TuneForge: fine-tune language models on your own task, self-hosted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def global_options(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option(help="host:port of the services [env: TUNEFORGE_ENDPOINT]")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key [env: TUNEFORGE_API_KEY]")] = None,
    project: Annotated[
        str | None, typer.Option(help="project [env: TUNEFORGE_PROJECT, default: default]")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="a profile of $TUNEFORGE_HOME/profiles.toml [env: TUNEFORGE_PROFILE]")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    ctx.obj = Options(endpoint=endpoint, api_key=api_key, project=project, json=json, profile=profile)


app.command()(suite.up)
app.command()(suite.status)
app.command()(quickstart.quickstart)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(evals.app, name="eval")
app.add_typer(serve.app, name="serve")
app.add_typer(projects.app, name="projects")
app.command()(serve.chat)
app.command()(train.worker)
app.command("data-worker")(train.data_worker)
app.command("registry-worker")(train.registry_worker)
app.command("serve-worker")(train.serve_worker)
app.add_typer(suite.keys_app, name="keys")


def _one_line(error: TuneForgeError) -> str:
    if error.code == "UNAVAILABLE":
        return f"cannot reach TuneForge ({error.message}); is the suite running? Start it with `tuneforge up`"
    return f"{error.code}: {error.message}"


def main() -> None:
    # typer (0.29) carries its own copy of click; its exceptions live there.
    from typer._click import exceptions as click

    # With TUNEFORGE_TRACE_FILE or OTEL_EXPORTER_OTLP_ENDPOINT set, the command is a trace's root.
    words = [word for word in sys.argv[1:] if not word.startswith("-")][:2]
    try:
        with telemetry.cli_span(" ".join(["tuneforge", *words])):
            code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.NoArgsIsHelpError as error:
        error.show()  # the command's help
        sys.exit(2)
    except click.UsageError as error:
        # One line, naming the option or argument, instead of click's usage box.
        hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
        err_console.print(
            f"error: {error.format_message()}{hint}", markup=False, soft_wrap=True, highlight=False
        )
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except TuneForgeError as error:
        err_console.print(f"error: {_one_line(error)}", markup=False, soft_wrap=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
