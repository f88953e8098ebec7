"""Everything one running internal system holds, in one object under one application key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from crm_internal.settings import CrmInternalSettings, FaultSettings
from crm_internal.store import CrmStore
from standin_kit.service import ServiceCore


@dataclass(kw_only=True)
class Service(ServiceCore[CrmStore]):
    settings: CrmInternalSettings
    faults_settings: FaultSettings


SERVICE = web.AppKey("crm_internal_service", Service)
