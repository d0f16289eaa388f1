import introspect


def test_every_public_name_resolves():
    for name in introspect.__all__:
        assert getattr(introspect, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute"):
        introspect.not_a_thing  # noqa: B018
