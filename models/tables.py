"""Imports every table so SQLModel.metadata knows them all (create_schema uses this)."""

from models.audit import AuditEvent
from models.documents import Document, Evidence, PlaybookVersion, ReceivedMessage
from models.escalation import Escalation
from models.outbox import DeliveryAttempt, Notification
from models.run import Run
from models.task import StepInstance
from models.wake import Lease, Wake

__all__ = [
    "AuditEvent",
    "DeliveryAttempt",
    "Document",
    "Escalation",
    "Evidence",
    "Lease",
    "Notification",
    "PlaybookVersion",
    "ReceivedMessage",
    "Run",
    "StepInstance",
    "Wake",
]
