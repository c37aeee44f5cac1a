"""Views of a job: the event-stream model, the text and ipywidgets views, and following.

* :mod:`.progress`: :class:`JobProgress`, the state every view renders, folded
  from a job's events.
* :mod:`.text`: :class:`TextJobView` and :func:`format_job_table` (plain text).
* :mod:`.widget`: :class:`WidgetJobView`, :func:`html_job_table` and
  :func:`make_view`; the only place that imports ``ipywidgets`` (on first use).
* :mod:`.follow`: :class:`Follower`, which feeds a job's events to a view.
"""

from __future__ import annotations

from .follow import Follower, JobView
from .progress import JobProgress, RankState
from .text import UNLIMITED, TextJobView, format_job_table
from .widget import WidgetJobView, html_job_table, make_view, render_charts, widgets_available

__all__ = [
    "UNLIMITED",
    "Follower",
    "JobProgress",
    "JobView",
    "RankState",
    "TextJobView",
    "WidgetJobView",
    "format_job_table",
    "html_job_table",
    "make_view",
    "render_charts",
    "widgets_available",
]
