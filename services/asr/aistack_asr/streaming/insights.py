"""The hook live speech analytics plugs into (`enable_insights`); the analytics issue implements it.

The recognizer hands every transcribed window of a session that asked for insights to an
`InsightsSession` and sends back whatever `Insight` messages it returns, in order with the windows.
With no provider installed, `enable_insights` is accepted and no insight is sent: nothing is made up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aistack.analytics.v1 import analytics_service_pb2 as analytics_pb

from aistack_asr.streaming.decoder import DecodedSegment


@dataclass(frozen=True)
class TranscribedWindow:
    """One window's transcript with session-relative times, as analytics sees it."""

    session_id: str
    batch_index: int
    text: str
    language: str
    start_seconds: float
    end_seconds: float
    segments: tuple[DecodedSegment, ...]


class InsightsSession(Protocol):
    """Analytics state of one live session."""

    async def on_window(self, window: TranscribedWindow) -> Sequence[analytics_pb.Insight]:
        """Insights found after this window (may be none). Called in window order."""
        ...

    async def close(self) -> Sequence[analytics_pb.Insight]:
        """Insights due at the end of the session (summaries); called once."""
        ...


class InsightsProvider(Protocol):
    """Opens analytics for sessions; one provider per recognizer."""

    async def open(self, session_id: str, language: str) -> InsightsSession: ...
