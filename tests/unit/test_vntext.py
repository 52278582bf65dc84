import unicodedata

from shared.vntext import fold, nfc, unaccent

HOA_NFC = "Nguyễn Thị Hòa"
HOA_NFD = unicodedata.normalize("NFD", "Nguyễn Thị Hoà")  # decomposed, with the other "oà" placement


def test_nfc_composes_decomposed_input() -> None:
    assert HOA_NFD != unicodedata.normalize("NFC", HOA_NFD)
    assert nfc(unicodedata.normalize("NFD", HOA_NFC)) == HOA_NFC
    assert nfc(HOA_NFC) == HOA_NFC


def test_fold_matches_all_spellings_of_a_name() -> None:
    variants = [HOA_NFC, HOA_NFD, "NGUYEN THI HOA", "nguyen  thi hoa ", "Nguyễn Thị Hoà", "\tNGUYỄN THỊ HÒA"]
    assert {fold(v) for v in variants} == {"nguyen thi hoa"}


def test_fold_handles_d_with_stroke() -> None:
    assert fold("Đặng Văn Đức") == fold("dang van duc") == "dang van duc"
    assert fold("ĐÀ NẴNG") == fold("đà nẵng") == "da nang"
    assert fold("Ðà Nẵng") == "da nang"  # U+00D0 look-alike typed for Đ


def test_unaccent_keeps_case() -> None:
    assert unaccent("Đà Nẵng") == "Da Nang"
    assert unaccent("ĐẶNG thị HOÀ") == "DANG thi HOA"
    assert unaccent(unicodedata.normalize("NFD", "Nguyễn Thị Hòa")) == "Nguyen Thi Hoa"
    assert unaccent("Hẹn gặp chị lúc 9h").isascii()


def test_fold_keeps_different_names_apart() -> None:
    assert fold("Nguyễn Thị Hòa") != fold("Nguyễn Thị Hoa Mai")
