"""The dashboard's templates and static files (served locally: pages work with no network)."""

from pathlib import Path

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
# plotly.js's cartesian partial bundle (heatmaps and scatter traces, all the dashboard draws), put
# there by scripts/vendor-plotly.sh from the npm registry, with its MIT license beside it.
PLOTLY_JS = WEB_DIR / "vendor" / "plotly-cartesian.min.js"
