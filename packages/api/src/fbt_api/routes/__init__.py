"""Every route of the API, one router per concern, assembled in the order the OpenAPI document lists them."""

from fastapi import APIRouter

from fbt_api.routes import health, jobs, tasks

api_router = APIRouter()
api_router.include_router(tasks.router)
api_router.include_router(jobs.router)
api_router.include_router(health.router)
