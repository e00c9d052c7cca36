"""Presentation: weekly numbers, plotly figures, notebook display helpers, the papermill runner
and the HTML template; imports the analysis layers.

Submodules are imported by name (``mysetlist_slo.report.figures``), so that papermill and
nbconvert load only when a report runs.
"""
