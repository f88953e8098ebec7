"""Everything one running case store holds, in one object under one application key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from case_store.settings import CaseStoreSettings, FaultSettings
from case_store.store import CaseStore
from standin_kit.service import ServiceCore


@dataclass(kw_only=True)
class Service(ServiceCore[CaseStore]):
    settings: CaseStoreSettings
    faults_settings: FaultSettings


SERVICE = web.AppKey("case_store_service", Service)
