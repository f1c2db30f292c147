"""What the streaming routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.streaming.sse import StreamConfig
from chatsys.api.wiring import Provider
from chatsys.domain.streaming.follow import FollowConversation, FollowTask

follow_task = Provider[FollowTask]("follow_task")
FollowTaskDep = Annotated[FollowTask, Depends(follow_task)]

follow_conversation = Provider[FollowConversation]("follow_conversation")
FollowConversationDep = Annotated[FollowConversation, Depends(follow_conversation)]

stream = Provider[StreamConfig]("stream")
StreamConfigDep = Annotated[StreamConfig, Depends(stream)]
