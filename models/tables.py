"""Imports every table so SQLModel.metadata knows them all (create_schema uses this)."""

from models.audit import AuditEvent
from models.documents import Document, Evidence, PlaybookVersion, ReceivedMessage
from models.escalation import Escalation
from models.hazard import ExtensionRequest, Hazard, ImportBatch, RiskPoint
from models.numbering import DocCounter, DocNumber
from models.outbox import DeliveryAttempt, Notification
from models.ranking import RankingFigure, RankingPublication
from models.run import Run
from models.signal_ack import SignalAck
from models.task import StepInstance
from models.wake import Lease, Wake

__all__ = [
    "AuditEvent",
    "DeliveryAttempt",
    "DocCounter",
    "DocNumber",
    "Document",
    "Escalation",
    "Evidence",
    "ExtensionRequest",
    "Hazard",
    "ImportBatch",
    "Lease",
    "Notification",
    "PlaybookVersion",
    "RankingFigure",
    "RankingPublication",
    "ReceivedMessage",
    "RiskPoint",
    "Run",
    "SignalAck",
    "StepInstance",
    "Wake",
]
