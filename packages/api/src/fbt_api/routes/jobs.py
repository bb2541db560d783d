"""GET /jobs/{job_id}: a job's state, as the configured backend knows it."""

import re

from fastapi import APIRouter, HTTPException

from fbt_api.deps import REQUIRE_API_KEY, BackendDep
from fbt_api.errors import ERRORS
from fbt_api.schemas import JobStatus

# Job ids are uuid4().hex (fbt_tasks.jobs.Job); anything else is refused before the backend is asked.
JOB_ID = re.compile(r"^[0-9a-f]{32}$")

router = APIRouter()


@router.get("/jobs/{job_id}", response_model=JobStatus, dependencies=REQUIRE_API_KEY, responses=ERRORS)
def job_status(job_id: str, backend: BackendDep) -> JobStatus:
    if not JOB_ID.match(job_id):
        raise HTTPException(422, detail="job_id must be 32 lowercase hex characters")
    state = backend.status(job_id)
    if state is None:
        raise HTTPException(404, detail=f"No job {job_id} known to the {backend.name} backend")
    return JobStatus(job_id=job_id, backend=backend.name, state=state)
