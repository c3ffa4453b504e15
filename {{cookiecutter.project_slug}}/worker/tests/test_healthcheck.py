from celery import Celery

from worker.healthcheck import answers


def test_a_running_worker_answers_by_its_node_name(celery_app: Celery, worker_node: str) -> None:
    assert answers(worker_node)


def test_a_node_that_does_not_run_does_not_answer(celery_app: Celery, worker_node: str) -> None:
    # Same host, another name: the ping is addressed, not broadcast to any worker.
    assert not answers(f"absent-{worker_node}", timeout=0.5)
