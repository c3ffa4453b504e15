"""HTTP routes. Each router carries its whole path prefix instead of receiving it
from include_router: the matched route then knows its full template
(`/api/v1/tasks/{task_id}`), which the metrics use as a label."""

API_V1_PREFIX = "/api/v1"
