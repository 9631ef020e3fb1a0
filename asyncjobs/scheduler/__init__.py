"""The campaign scheduler, one concern a module (read :mod:`.campaign` first):

- ``campaign``: :class:`Campaign`, the public class, and the task group of a run;
- ``control``: how a run ends (done, the caller's stop, a fatal error);
- ``state``: slots, tracked jobs, jobs due again, caps and paces, restored from the journal;
- ``decisions``: what a failed create leads to, as a pure function;
- ``dispatch``: claims and the submit workers;
- ``outcomes``: the one place a job's outcome is committed;
- ``tracker``: status sweeps;
- ``reporting``: settings, events, progress and the summary;
- ``parts``: what the dispatcher and the tracker share.
"""

from .campaign import Campaign
from .reporting import CampaignEvent, KeyProgress, Progress, Settings, Summary

__all__ = ["Campaign", "CampaignEvent", "KeyProgress", "Progress", "Settings", "Summary"]
