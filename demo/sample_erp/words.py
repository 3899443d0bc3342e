"""Word lists the sample company is made of: places, people, trades, building types, cost codes.

Order matters: generators draw from these with seeded ``random.Random`` streams, so reordering a
list changes the sample for a given seed.
"""

from __future__ import annotations

PLACES = (
    "Summit Northgate Ridgeline Keystone Pioneer Cascade Frontier Evergreen Timberline Westfield "
    "Cornerstone Bedrock Apex Liberty Heritage Lakeshore Prairie Harbor Capital Metro Granite "
    "Ironwood Redstone Bluewater Silverline Stonebridge Highland Riverside Eastgate Maple"
).split()
SURNAMES = (
    "Henderson O'Brien Nguyen Ortiz Walsh Kowalski Patel MacLeod Tremblay Gagnon Schmidt "
    "Johansson Rossi Kim Okafor Fraser Murphy Delgado Chen Novak Bouchard Singh Larsen Petrov"
).split()
# trade → words that trade's suppliers put in their names
TRADES: dict[str, tuple[str, ...]] = {
    "Concrete": ("Concrete", "Ready-Mix", "Concrete Pumping"),
    "Electrical": ("Electrical", "Electric"),
    "Plumbing": ("Plumbing", "Plumbing & Heating"),
    "HVAC": ("Mechanical", "Heating & Cooling", "HVAC"),
    "Structural Steel": ("Steel", "Steel Erectors", "Ironworks"),
    "Roofing": ("Roofing", "Roofing & Sheet Metal"),
    "Drywall": ("Drywall", "Interiors"),
    "Masonry": ("Masonry", "Stone"),
    "Excavation": ("Excavating", "Earthworks"),
    "Paving": ("Paving", "Asphalt"),
    "Glazing": ("Glass & Glazing", "Glass"),
    "Fire Protection": ("Fire Protection", "Sprinkler"),
    "Painting": ("Painting", "Coatings"),
    "Flooring": ("Flooring", "Tile & Stone"),
    "Lumber": ("Lumber", "Building Supply"),
    "Equipment Rental": ("Equipment Rental", "Rentals"),
    "Landscaping": ("Landscaping",),
    "Insulation": ("Insulation",),
    "Surveying": ("Surveying", "Geomatics"),
}
SUFFIXES = {
    "US": ("Inc.", "LLC", "Co.", "Supply", "Contractors", "Services", "Group", "Corp."),
    "CA": ("Ltd", "Ltd.", "Inc.", "Limited", "Supply", "Contracting"),
}
# (city, state or province, area code, start of the ZIP / first letter of the postal code)
CITIES = {
    "US": (
        ("Denver", "CO", "303", "802"), ("Phoenix", "AZ", "602", "850"),
        ("Austin", "TX", "512", "787"), ("Seattle", "WA", "206", "981"),
        ("Atlanta", "GA", "404", "303"), ("Chicago", "IL", "312", "606"),
        ("Boston", "MA", "617", "021"), ("Nashville", "TN", "615", "372"),
        ("Charlotte", "NC", "704", "282"), ("Salt Lake City", "UT", "801", "841"),
        ("Portland", "OR", "503", "972"), ("Tampa", "FL", "813", "336"),
        ("Columbus", "OH", "614", "432"), ("Minneapolis", "MN", "612", "554"),
        ("Sacramento", "CA", "916", "958"), ("Las Vegas", "NV", "702", "891"),
        ("Kansas City", "MO", "816", "641"), ("Pittsburgh", "PA", "412", "152"),
    ),
    "CA": (
        ("Toronto", "ON", "416", "M"), ("Mississauga", "ON", "905", "L"),
        ("Ottawa", "ON", "613", "K"), ("Vancouver", "BC", "604", "V"),
        ("Calgary", "AB", "403", "T"), ("Edmonton", "AB", "780", "T"),
        ("Winnipeg", "MB", "204", "R"), ("Montréal", "QC", "514", "H"),
        ("Québec", "QC", "418", "G"), ("Halifax", "NS", "902", "B"),
        ("Saskatoon", "SK", "306", "S"), ("St. John's", "NL", "709", "A"),
    ),
}
STREETS = "Quarry Industrial Commerce Main Railway Foundry Mill Depot Airport Kiln".split()
STREET_TYPES = ("Road", "Street", "Avenue", "Parkway", "Boulevard", "Drive", "Way")
MAILBOXES = ("ap", "accounts", "info", "billing", "office", "orders")
NOTES = (
    "Net 30", "Net 45, 2% 10", "Requires a PO number on every invoice",
    "Preferred supplier for {city} projects", "COI on file until {year}-03-31",
    "Remit to: PO Box {box}\n{city}, {state}",  # multi-line, as ERP exports carry them
)

# --- the company's own work ---------------------------------------------------------------------

PROJECT_STREETS = "Main Front Market Harbor Lake Oak Elm Pine Cedar Station College Park".split()
BUILDINGS = (
    "Medical Office Building", "Elementary School Addition", "Distribution Center",
    "Apartments", "Parking Structure", "Fire Station", "Wastewater Treatment Plant Upgrade",
    "Public Library Renovation", "Community Recreation Center", "Hotel & Conference Center",
    "Corporate Headquarters", "Mixed-Use Development", "Senior Living Community", "Data Center",
    "Transit Maintenance Facility", "High School Modernization", "Retail Center",
    "Water Reservoir", "Bridge Replacement", "Research Laboratory", "Police Headquarters",
    "Airport Terminal Expansion", "Cold Storage Warehouse", "Student Housing",
    "Manufacturing Plant", "Hospital Patient Tower", "Office Tenant Improvements",
)
SMALL_BUILDINGS = (
    "Tenant Improvements", "Roof Replacement", "Lobby Renovation", "Parking Lot Resurfacing",
    "Restroom Upgrades", "Loading Dock Addition",
)
SUB_JOB_SETS = (
    ("Building A", "Building B", "Building C"),
    ("Phase 1", "Phase 2", "Phase 3"),
    ("Site Work", "Building", "Parking Structure"),
    ("North Tower", "South Tower", "Podium"),
)
OWNERS = (
    "Health System", "Development Group", "Properties", "School District", "Holdings",
    "Real Estate Partners", "University", "Capital Partners", "Logistics", "Housing Authority",
    "Hospitality Group", "Industrial REIT",
)
FIRST_NAMES = (
    "James Maria Robert Linda Michael Patricia David Jennifer Daniel Elizabeth Jose Sarah "
    "Kevin Aisha Wei Priya Mohammed Sofia Liam Emma Noah Olivia Lucas Chloe Mateo Fatima "
    "Ethan Hannah Marc Isabelle Raj Mei Tomasz Ingrid Kwame Yuki"
).split()
EMPLOYEE_SURNAMES = SURNAMES + (
    "Garcia Johnson Williams Brown Davis Miller Wilson Anderson Thomas Taylor Moore Martin "
    "Jackson Thompson White Lopez Lee Gonzalez Harris Clark Lewis Robinson Walker Young Roy "
    "Côté Lavoie Wong Sato Müller"
).split()
JOB_TITLES = (
    ("Project Manager", 12), ("Assistant Project Manager", 8), ("Project Engineer", 10),
    ("Superintendent", 10), ("Assistant Superintendent", 6), ("Foreman", 14),
    ("Carpenter", 18), ("Laborer", 18), ("Equipment Operator", 8), ("Estimator", 5),
    ("Safety Manager", 3), ("Project Accountant", 4), ("Payroll Administrator", 2),
    ("Scheduler", 2), ("BIM Coordinator", 2), ("Operations Manager", 2),
)
COMPANY_DOMAIN = "granitepeakbuilders.example"

# CSI-like cost codes: division-section, the company's standard list.
GENERAL_REQUIREMENTS = ("01-001", "General Requirements")
COST_CODES = (
    GENERAL_REQUIREMENTS,
    ("01-300", "Project Supervision"), ("01-500", "Temporary Facilities"),
    ("01-700", "Final Cleaning"), ("02-100", "Site Clearing"), ("02-200", "Demolition"),
    ("02-300", "Earthwork"), ("02-500", "Site Utilities"), ("02-700", "Paving & Surfacing"),
    ("02-900", "Landscaping"), ("03-100", "Concrete Forming"),
    ("03-200", "Concrete Reinforcing"), ("03-300", "Cast-in-Place Concrete"),
    ("03-400", "Precast Concrete"), ("04-200", "Unit Masonry"), ("05-100", "Structural Steel"),
    ("05-500", "Metal Fabrications"), ("06-100", "Rough Carpentry"),
    ("06-200", "Finish Carpentry"), ("07-100", "Waterproofing"), ("07-200", "Insulation"),
    ("07-500", "Roofing"), ("07-900", "Joint Sealants"), ("08-100", "Doors & Frames"),
    ("08-500", "Windows"), ("08-800", "Glazing"), ("09-200", "Gypsum Board"), ("09-300", "Tile"),
    ("09-600", "Flooring"), ("09-900", "Painting"), ("10-100", "Specialties"),
    ("11-000", "Equipment"), ("12-000", "Furnishings"), ("14-200", "Elevators"),
    ("21-000", "Fire Suppression"), ("22-000", "Plumbing"), ("23-000", "HVAC"),
    ("26-000", "Electrical"), ("27-000", "Communications"), ("28-000", "Electronic Safety & Security"),
)
# (code, name, Procore base type); the relative size of a budget line of that type
COST_TYPES = (
    ("L", "Labor", "other"), ("M", "Materials", "materials"), ("E", "Equipment", "equipment"),
    ("S", "Subcontract", "commitment"), ("O", "Other", "other"),
)
COST_TYPE_WEIGHTS = {"L": 1.2, "M": 1.5, "E": 0.6, "S": 3.0, "O": 0.3}
# unit of measure → lowest and highest unit cost, and quantity on a purchase order line
UNITS = {
    "L": (("HR", 55, 140, 8, 800),),
    "M": (
        ("CY", 140, 260, 10, 400), ("TON", 900, 2400, 1, 60), ("LF", 4, 90, 50, 2000),
        ("SF", 3, 45, 100, 5000), ("EA", 20, 1500, 1, 100),
    ),
    "E": (("DAY", 250, 1800, 1, 60), ("MO", 2500, 18000, 1, 12)),
}
