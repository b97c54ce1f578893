"""Experiments: datasets and their experiments, and two experiments compared side by side."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from components.phoenix_pane import create_phoenix_pane
from components.phoenix_status import phoenix_error_text
from components.table import create_data_table
from services import experiments
from services.container import get_services
from services.phoenix import PhoenixError
from services.tables import phoenix_columns

dash.register_page(
    __name__,
    path="/experiments",
    name="Experiments",
    title="Experiments · Prompt Analytics",
    order=30,
    icon="bi-beaker",
    needs_phoenix=True,
)
PAGE = "experiments"
# Grids of at most this many rows (one page) are sized to their rows.
AUTO_HEIGHT_ROWS = 20


def layout(**query: str) -> html.Div:
    """Render the experiments of every dataset, and the comparison picker."""
    phoenix = get_services().phoenix
    header = html.H2("Experiments", className="h4 mb-3")
    if phoenix is None:
        return html.Div(
            [
                header,
                dbc.Alert(
                    "The Phoenix integration is turned off.", color="secondary", id=f"{PAGE}-off"
                ),
            ]
        )
    try:
        table = experiments.experiments_table(phoenix)
    except PhoenixError as exc:
        return html.Div(
            [
                header,
                dbc.Alert(phoenix_error_text(exc), color="danger", id=f"{PAGE}-error"),
            ]
        )
    options = [{"label": f"{r.dataset} / {r.name}", "value": r.id} for r in table.itertuples()]
    return html.Div(
        [
            header,
            create_data_table(
                f"{PAGE}-grid",
                experiments.EXPERIMENT_TABLE,
                rows=table.to_dict("records"),
                export_href=f"/api/export/{PAGE}/experiments.csv",
                title="Experiments",
                row_id="params.data.id",
                # A few experiments: the grid is as tall as its rows, not a fixed 420 px.
                auto_height=len(table) <= AUTO_HEIGHT_ROWS,
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id=f"{PAGE}-a",
                            options=options,
                            value=query.get("a"),
                            placeholder="Experiment A",
                        ),
                        md=5,
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id=f"{PAGE}-b",
                            options=options,
                            value=query.get("b"),
                            placeholder="Experiment B",
                        ),
                        md=5,
                    ),
                ],
                className="g-2 mb-3",
            ),
            dcc.Loading(html.Div(id=f"{PAGE}-compare")),
        ]
    )


@callback(
    Output(f"{PAGE}-compare", "children"),
    Input(f"{PAGE}-a", "value"),
    Input(f"{PAGE}-b", "value"),
)
def compare(experiment_a: str | None, experiment_b: str | None) -> Any:
    """Compare two experiments: score deltas, a per-example diff and Phoenix's compare view."""
    phoenix = get_services().phoenix
    if phoenix is None or not experiment_a or not experiment_b:
        return html.P("Pick two experiments to compare them.", className="text-body-secondary")
    try:
        # Refuses ids that are not among the listed experiments before asking Phoenix for them.
        result = experiments.compare(phoenix, experiment_a, experiment_b)
    except experiments.UnknownExperiment as exc:
        return dbc.Alert(
            f"{exc} Pick two experiments from the lists above.",
            color="warning",
            id=f"{PAGE}-unknown",
        )
    except PhoenixError as exc:
        return dbc.Alert(phoenix_error_text(exc), color="danger")
    pair = urlencode([("a", experiment_a), ("b", experiment_b)])
    compare_path = f"/datasets/{quote(result.dataset_id, safe='')}/compare?" + urlencode(
        [("experimentId", experiment_a), ("experimentId", experiment_b)]
    )
    return html.Div(
        [
            create_data_table(
                f"{PAGE}-deltas",
                phoenix_columns(result.deltas.columns),
                rows=result.deltas.round(4).to_dict("records"),
                title="Mean score, B minus A",
                export_href=f"/api/export/{PAGE}/experiment-deltas.csv?{pair}",
                auto_height=len(result.deltas) <= AUTO_HEIGHT_ROWS,
            ),
            create_data_table(
                f"{PAGE}-examples",
                phoenix_columns(result.examples.columns),
                rows=result.examples.round(4).to_dict("records"),
                title="Per example",
                export_href=f"/api/export/{PAGE}/experiment-examples.csv?{pair}",
            ),
            create_phoenix_pane(f"{PAGE}-phoenix", compare_path, "Phoenix compare view"),
        ]
    )
