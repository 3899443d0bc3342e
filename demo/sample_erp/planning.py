"""Resource Planning's people and projects, as a system of record keeps them for Procore's
workforce planning: the field staff among the employees, and the projects, each in groups
(regions, divisions) named as in Resource Planning.

Defects: a person in a group Resource Planning does not have, and an active project without the
start date Resource Planning requires of active projects.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from demo.sample_erp.base import Company, Row, Spoiler, TableData, columns, stamp

# The groups the sandbox company starts with in Resource Planning (sandbox/store.py).
GROUPS = ("Field Operations", "North Region", "South Region", "Civil")
UNKNOWN_GROUP = "Marine Works"

RESOURCE_PEOPLE_COLUMNS = columns(
    "employee_number VARCHAR, first_name VARCHAR, last_name VARCHAR, email VARCHAR, phone VARCHAR, "
    "status VARCHAR, groups VARCHAR, is_assignable BOOLEAN, hourly_wage DECIMAL(10,2), "
    "hired_date DATE, updated_at TIMESTAMPTZ"
)
RESOURCE_PROJECTS_COLUMNS = columns(
    "project_number VARCHAR, name VARCHAR, status VARCHAR, groups VARCHAR, start_date DATE, "
    "est_end_date DATE, address_1 VARCHAR, city_town VARCHAR, state_province VARCHAR, "
    "zipcode VARCHAR, country VARCHAR, timezone VARCHAR, updated_at TIMESTAMPTZ"
)


def _groups(rng: random.Random) -> str:
    """One region, and the field operations group for some."""
    chosen = [rng.choice(GROUPS[1:])]
    if rng.random() < 0.4:
        chosen.insert(0, GROUPS[0])
    return "; ".join(chosen)


def generate_resource_people(rng: random.Random, company: Company) -> TableData:
    """About two thirds of the employees that sync cleanly: the ones planned onto projects."""
    employees = company.intended("employees")
    good = [employees[key] for key in company.keys("employees")]
    rows = [_person(rng, employee, company) for employee in good if rng.random() < 0.66] or \
           [_person(rng, good[0], company)]
    data = TableData("resource_people", "employee_number", RESOURCE_PEOPLE_COLUMNS, rows)
    spoiler = Spoiler(rng, data, lambda row: True)
    for row in spoiler.pick(1):
        spoiler.spoil(row, "groups", "unknown_group", f"{UNKNOWN_GROUP}; {row['groups']}")
    return data


def _person(rng: random.Random, employee: Row, company: Company) -> Row:
    return {
        "employee_number": employee["employee_number"],
        "first_name": employee["first_name"],
        "last_name": employee["last_name"],
        "email": employee["email_address"],
        "phone": employee["business_phone"],
        "status": "active" if employee["is_active"] else "inactive",
        "groups": _groups(rng),
        "is_assignable": rng.random() < 0.9,
        "hourly_wage": Decimal(rng.randrange(2800, 7200)) / 100,
        "hired_date": (company.now - timedelta(days=rng.randint(30, 20 * 365))).date(),
        "updated_at": stamp(rng, company.now),
    }


def generate_resource_projects(rng: random.Random, company: Company) -> TableData:
    projects = company.intended("projects")
    rows = [_planned_project(rng, projects[key], company) for key in company.keys("projects")]
    data = TableData("resource_projects", "project_number", RESOURCE_PROJECTS_COLUMNS, rows)
    spoiler = Spoiler(rng, data, lambda row: row["status"] == "active")
    for row in spoiler.pick(1):
        spoiler.spoil(row, "start_date", "missing_start_date", None)
    return data


def _planned_project(rng: random.Random, project: Row, company: Company) -> Row:
    today = company.now.date()
    status = "inactive" if not project["active"] else "pending" if project["start_date"] > today else "active"
    return {
        "project_number": project["project_number"],
        "name": project["name"],
        "status": status,
        "groups": _groups(rng),
        "start_date": project["start_date"],
        "est_end_date": project["completion_date"],
        "address_1": project["address"],
        "city_town": project["city"],
        "state_province": project["state_code"],
        "zipcode": project["zip"],
        "country": project["country_code"],
        "timezone": "America/Toronto" if project["country_code"] == "CA" else "America/Denver",
        "updated_at": stamp(rng, company.now),
    }
