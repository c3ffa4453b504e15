"""The task engine: Celery tasks sent, awaited and followed for their owners, from
async code. What a service calls is below; README.md beside this file tells how."""

# `X as X`: each name re-exported, as the public surface.
from taskengine.config import EngineConfig as EngineConfig
from taskengine.config import broker_urls as broker_urls
from taskengine.engine import TaskEngine as TaskEngine
from taskengine.engine import open_engine as open_engine
from taskengine.errors import BrokerUnavailableError as BrokerUnavailableError
from taskengine.errors import PostgresUnavailableError as PostgresUnavailableError
from taskengine.errors import RedisUnavailableError as RedisUnavailableError
from taskengine.errors import ServiceUnavailableError as ServiceUnavailableError
from taskengine.errors import TaskEndedError as TaskEndedError
from taskengine.errors import TaskFailedError as TaskFailedError
from taskengine.errors import TaskNotFoundError as TaskNotFoundError
from taskengine.errors import TaskTimeoutError as TaskTimeoutError
from taskengine.errors import TooManyFollowersError as TooManyFollowersError
from taskengine.errors import TooManyTasksError as TooManyTasksError
from taskengine.records import task_records as task_records
from taskengine.states import TaskError as TaskError
from taskengine.states import TaskReply as TaskReply
from taskengine.states import TaskSummary as TaskSummary
