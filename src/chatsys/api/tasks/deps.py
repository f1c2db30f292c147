"""What the tasks routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.tasks.cancel import CancelTask
from chatsys.domain.tasks.queries import GetTask, ListTaskEvents, ListTasks
from chatsys.domain.tasks.submission import SubmitTask

submit_task = Provider[SubmitTask]("submit_task")
SubmitTaskDep = Annotated[SubmitTask, Depends(submit_task)]

get_task = Provider[GetTask]("get_task")
GetTaskDep = Annotated[GetTask, Depends(get_task)]

list_tasks = Provider[ListTasks]("list_tasks")
ListTasksDep = Annotated[ListTasks, Depends(list_tasks)]

list_events = Provider[ListTaskEvents]("list_events")
ListTaskEventsDep = Annotated[ListTaskEvents, Depends(list_events)]

cancel_task = Provider[CancelTask]("cancel_task")
CancelTaskDep = Annotated[CancelTask, Depends(cancel_task)]
