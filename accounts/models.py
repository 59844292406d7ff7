from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower


class UserManager(BaseUserManager):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email):
        """The one rule for an email we store or look up: Django's (which lowercases only the domain), then all
        of it lowercased, so registering, signing in and finding a user never depend on the case typed."""
        return super().normalize_email(email).lower()

    def create_user(self, email, password=None, **fields):
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, email):
        # Emails are stored lowercased; sign-in must not depend on the case the user types.
        return self.get(email=self.normalize_email(email))

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


class User(AbstractUser):
    """Everyone signs in by email. Customers register themselves; staff are Django staff users."""

    username = None
    first_name = None
    last_name = None
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["name"]
    objects = UserManager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.email

    def get_full_name(self):
        return self.name

    def get_short_name(self):
        return self.name

    @property
    def driver_id(self) -> str | None:
        """The user's driver profile id (null: not a driver), as a bearer token's claim carries it."""
        driver = getattr(self, "driver", None)  # the reverse side of delivery's profile, without importing it
        return str(driver.pk) if driver else None
