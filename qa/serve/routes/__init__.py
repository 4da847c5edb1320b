"""One APIRouter per resource; `admin` holds every route that needs the admin token."""
