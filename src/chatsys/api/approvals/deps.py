"""What the approvals routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.approvals.decisions import DecideApproval, ListApprovals

decide_approval = Provider[DecideApproval]("decide_approval")
DecideApprovalDep = Annotated[DecideApproval, Depends(decide_approval)]

list_approvals = Provider[ListApprovals]("list_approvals")
ListApprovalsDep = Annotated[ListApprovals, Depends(list_approvals)]
