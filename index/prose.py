"""Decide from a sentence's own text whether it is quotable prose (issue #14, requirement 2).

Pure and cheap: only ``re``. Every rule uses a structural or linguistic cue (handles, links, credit
markers, imperative calls to action addressed to the reader, digit density, sentence-final punctuation,
capitalisation) and never a list of sites or outlets, so it carries over to corpora we have not seen.
The kind is decided once, at ingest, and stored with the sentence.
"""

from __future__ import annotations

import re

RULES_VERSION = "2"  # bump when a rule below (or sentence splitting) changes: every host's lexical index
# classifies its chunks again (index.follower)

PROSE = "prose"
SOCIAL = "social"  # a tweet or other social embed
PROMO = "promo"  # an advertisement, a call to action, site furniture ("Loading…", "Read more")
CAPTION = "caption"  # a photo caption or credit, a copyright line
HEADING = "heading"  # a title, a list lead-in, or a heading glued to the sentence after it
TABLE = "table"  # a row of figures or of separated cells
BYLINE = "byline"  # "By Jane Doe", "Updated 3:45 PM ET"
FRAGMENT = "fragment"  # too short or too broken to stand as a quote
QUESTION = "question"  # the writer asking (the reader, or rhetorically): it states nothing that could be quoted
KINDS = (PROSE, SOCIAL, PROMO, CAPTION, HEADING, TABLE, BYLINE, FRAGMENT, QUESTION)
# a sentence that ends in a question mark outside any quotation: "Do you work at X and know more?"
_OWN_QUESTION = re.compile(r"\?[\s)\]]*$")
_QUOTED = re.compile(r"[\"“”]")

MIN_PROSE_WORDS = 4  # below this a line is a fragment, unless it is a complete short sentence:
MIN_SHORT_SENTENCE_WORDS = 2  # "He resigned." -- ends like a sentence and has a lowercase (verb-bearing) word
UNPUNCTUATED_PROSE_MIN_WORDS = 15  # a line this long, mostly lowercase, is prose that lost its full stop
UNPUNCTUATED_PROSE_CAPS_SHARE = 0.4  # ...no more than this share of its words capitalised
MAX_HEADING_WORDS = 14  # a glued heading before a colon is at most this long
HEADING_CAPS_SHARE = 0.5  # ...and at least this share of its words are capitalised
TITLE_CASE_MIN_WORDS = 4  # a Title Case line this long is a headline even with a full stop (shorter: often names)
SHOUT_SHARE = 0.6  # a line with this share of ALL-CAPS words is a heading or a banner
TABLE_DIGIT_SHARE = 0.5  # a line whose tokens are mostly numbers is a table row...
TABLE_MAX_LOWERCASE_WORDS = 1  # ...unless it has lowercase words: a verb makes it a sentence about numbers
TABLE_DIGIT_SHARE_UNPUNCTUATED = 0.3  # ...a lower share suffices when it has no sentence-final punctuation
TABLE_MIN_NUMBERS = 3  # a row has at least this many numeric cells
TABLE_MIN_SEPARATORS = 2  # "a | b | c": two cell separators make a row
BYLINE_MAX_WORDS = 12  # "By Jane Doe and John Roe, Staff Reporters" is short
MAX_EMOJI = 0  # news prose has no emoji; a post pasted into the page does

_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_TOKEN = re.compile(r"\S+")
_NUMBER = re.compile(r"^[(\[]?[-+−–$£€¥#]?\d[\d,.:/%x-]*[%)\]]?[,;:]?$")
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\U0001D400-\U0001D7FF]")
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE = rf"{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}"
_TIME = r"\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?|AM|PM)"

# Sentence-final punctuation, allowing closing quotes/brackets after it.
_FINAL = re.compile(r"[.!?…]['\"”’)\]]*\s*$|[.!?…]\s*['\"”’]\s*\)?\s*$")
_SPEECH_VERB = re.compile(r"\b(?:said|says|say|told|tells|added|adds|wrote|writes|explained|stated|warned|noted|"
                          r"continued|asked|tweeted|posted|declared|insisted|replied|read|reads)\s*$", re.I)

# --- social embeds: a handle in brackets or a platform link is never prose.
_SOCIAL = [
    re.compile(r"pic\.twitter\.com/|\bt\.co/\w|\b(?:twitter|x|instagram|tiktok|facebook)\.com/", re.I),
    re.compile(r"\(@\w{1,30}\)"),  # the signature of an embedded post: "— Name (@handle) date"
    re.compile(rf"[—–]\s*[^—–]{{0,80}}@\w+.{{0,20}}{_DATE}"),
    re.compile(rf"{_DATE}\s*See more\s*$"),  # the tail of an embed widget
    re.compile(r"\bA post shared by\b", re.I),
]
_HASHTAG = re.compile(r"(?:^|\s|[^\w&])#[A-Za-z]\w+")

# --- calls to action and site furniture.
_FURNITURE = re.compile(
    r"^(?:advertisement|advert|sponsored(?: content)?|loading(?:\.{3}|…)?|read more|see more|show more|"
    r"related(?: articles| stories| pages| content| coverage| reading)?|more (?:from|on|stories|news|videos)\b.{0,40}|"
    r"also read|recommended|share(?: this)?(?: article| story)?|skip (?:ad|advert)|"
    r"story continues(?: below)?(?: (?:the )?advert(?:isement)?)?|continue reading|listen to this (?:article|story)|"
    r"\d+ min(?:ute)?s? read|trending(?: now)?|comments?|\d+ comments?|subscribe|sign up|log ?in|"
    r"close|menu|home|next|previous|back to top|watch|listen|follow us|top stories)\s*[:.!…]?\s*$",
    re.I)
_LABEL = re.compile(r"^(?:[A-Z]{2,}(?: [A-Z]{2,})*|Read more|Related|Also read|See also|Recommended|Watch|Listen|"
                    r"Read|More|Latest)\s*:\s*", re.UNICODE)
_CTA_VERB = (r"(?:watch|stream|sign up|signup|subscribe|click|tap|follow|download|join|register|listen|shop|buy|"
             r"order|visit|get|grab|claim|bet|try|check out|catch|learn more|find out|discover|explore|read|see|"
             r"don'?t miss|never miss|be the first|stay (?:up to date|informed|tuned)|support|donate|share|"
             r"bookmark|install|upgrade|start your|unlock)")
# A first word followed by an auxiliary is a noun subject ("Download formats will…"), not an imperative.
_AUXILIARY = r"is|are|was|were|will|would|can|could|should|may|might|must|has|have|had|needs|does|did"
_CTA_START = re.compile(rf"^(?:[^\w\"“‘']*\s*)?(?:please\s+)?{_CTA_VERB}\b(?!\s+(?:\S+\s+)?(?:{_AUXILIARY})\b)", re.I)
# An imperative only counts as an advert when it addresses the reader or points somewhere to go.
_CTA_TARGET = re.compile(  # lowercase on purpose: "Get Me Out Of Here" is a title, "get it here" is a pitch
    r"\b(?:you|your|our|us|here|now|today|free|newsletters?|subscri\w+|link|links|live|on demand|home of|"
    r"exclusive\w*|offers?|deals?|discount|promo code|inbox|below)\b")
_PROMO_ANYWHERE = [
    re.compile(r"\b(?:sign up|subscribe)\b.{0,60}\bnewsletters?\b|\bnewsletters?\b.{0,40}\b(?:sign up|subscribe)",
               re.I),
    re.compile(r"\baffiliate (?:links?|commission)|\bearn (?:a |an )?(?:affiliate )?commission\b", re.I),
    re.compile(r"\bby (?:signing up|subscribing|clicking|registering)\b", re.I),
    re.compile(r"\b(?:click|tap) (?:here|the link|on the link|below)\b", re.I),
    re.compile(r"\bthis (?:article|story|post|content) (?:is|was) (?:sponsored|brought to you)\b", re.I),
    re.compile(r"\bgamble responsibly\b|\b1-800-GAMBLER\b|\b18\+\s*(?:only|\|)|\bT&Cs? apply\b", re.I),
    re.compile(r"\b(?:we|our) (?:use|uses) cookies\b|\bour (?:privacy policy|terms of (?:use|service))\b", re.I),
    re.compile(r"\bsupported browser\b|\benable javascript\b", re.I),
    re.compile(r"\bfollow us\b|\bnewsletter promotion\b|\bterms of service apply\b", re.I),
    re.compile(r"\b(?:register|log in|sign in) or subscribe\b|\bsubscribe to (?:save|read|continue|access|unlock)\b",
               re.I),
    # a raw link, or a web address the reader is told to visit, sends the reader elsewhere; a site named
    # as the subject of a sentence ("the fake site is www.x.org") stays prose
    re.compile(r"https?://|\b(?:visit|go to|head to|head over to|see|log on to)\s+www\.", re.I),
    re.compile(r"\b[\w.+-]+@[\w-]+\.[a-z]{2,}\b"),  # so does an email address
]

# --- captions and credits.
_CAPTION = [
    re.compile(r"\b(?:Photo(?:graph)?s?|Image|Images|Picture|Pictures|Pictured|Pic|Illustration|Video|Footage|Graphic|"
               r"Credit|Credits|Source|Sources|Courtesy|PHOTOS?|IMAGES?|PICTURED?|CREDIT|SOURCE|VIDEO)"
               r"\s*(?::|\bby\b|\bcredit\b\s*:?|\bcourtesy\b)\s*\S"),
    re.compile(r"\bFile Photo\b|\bFILE PHOTO\b"),
    # "… REUTERS/Jane Doe" closing the line: an agency in capitals, a slash, a name
    re.compile(r"\b[A-Z]{2,}/\s?[A-Z][a-z][\w'’-]*(?:\s[A-Z][\w'’-]*){0,3}(?:/[A-Z][\w ]{1,20})?$"),
    re.compile(r"\bGetty Images\b|\bvia Getty\b|\b/\s?Getty\b|\bShutterstock\b|\biStock(?:photo)?\b"),
    re.compile(r"\((?:[^()]*\s)?(?:Photo|Photograph|Image|Pictured|Picture|File|Credit)\b[^()]*\)\s*$"),
    # "(AP Photo/Evan Vucci)", "(The FA/Getty)": a bracketed Agency/Name pair closing an unpunctuated line
    re.compile(r"[^.!?…]\s*\(\s*[A-Z][\w.&'’ -]{0,40}/\s?[A-Z][\w.&'’ -]{0,40}\)\s*$"),
    re.compile(r"\bNOTE TO USER\b|\bAll [Rr]ights [Rr]eserved\b|^(?:Copyright|©)|\bCopyright \d{4}\b"),
    re.compile(r"\|\s*(?:Source|Photo|Image|Credit)s?\s*:", re.I),
]

# --- bylines and timestamps.
_BYLINE = [
    # an agency's trailer: "(Reporting by Jane Doe; Editing by John Roe)"
    re.compile(r"^\(?(?:Additional )?(?:Reporting|Writing|Editing) by [A-Z].{0,120}$"),
    # "By" followed by nothing but capitalised names and joiners ("By the end of…" is prose)
    re.compile(r"^(?:By|Words by|Written by|Reporting by|Additional reporting by|Edited by|Interview by)\s+"
               r"[A-Z][\w'’.-]*(?:(?:\s+|,\s*|\s+and\s+|\s+&\s+)(?:[A-Z][\w'’.-]*|de|van|von|da|del|la|le|bin))*"
               r"(?:\s*[,|–—-]\s*.{0,60})?\s*$"),
    re.compile(rf"^(?:Updated|Published|Posted|Last updated|First published|Modified|Created)\b[\s:,]*"
               rf"(?:on\s+)?(?:{_DATE}|{_TIME}|\d{{1,2}}[/.]\d{{1,2}}|{_MONTH}\s+\d|\d+ (?:minutes?|hours?|days?) ago|"
               rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*)", re.I),
]
_ONLY_DATE = re.compile(rf"^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s*)?(?:{_DATE}|\d{{1,2}} {_MONTH} \d{{4}})"
                        rf"(?:\s*(?:at|,|·|-)?\s*{_TIME}(?:\s*[A-Z]{{2,4}})?)?\s*$", re.I)

_FUNCTION_WORDS = frozenset("a an the of in on at to for and or but nor by with from as vs vs. v via into onto over "
                           "up out off per than is are be".split())
_BULLET = re.compile(r"^\s*(?:[-–—•·*▪►]|\d{1,2}[.)])\s+")
_LEADING_FURNITURE = re.compile(
    r"^(?:Advertisement|ADVERTISEMENT|Loading(?:\.{3}|…)?|Sponsored|Story continues(?: below)?|Skip Ad|"
    r"Continue reading|Read more|Related|Recommended)\s*[:.…]?\s+(?=[\"“‘'A-Z])")
# "Credit: Jane Doe “We won,” she said.": a short credit whose end is marked by an opening quote
_LEADING_CREDIT = re.compile(r"^(?:Credit|Photo(?:graph)?|Image|Picture|Source)s?\s*:\s*"
                             r"(?:[A-Z][\w.'’&/-]*\s+){1,4}(?=[“\"‘])")
# a full stop after a word (not an initial such as "T.J."), or ! or ;, followed by more text
_SENTENCE_INSIDE = re.compile(r"(?:[a-z]{2}\.|[!;])[\"”’]?\s")
_COLON_HEADING = re.compile(r"^(?P<head>[^:]{2,160}?)\s*:\s+(?P<rest>[A-Z].*)$", re.S)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _capitalised_share(words: list[str]) -> float:
    return sum(w[0].isupper() for w in words) / len(words) if words else 0.0


def _shout_share(words: list[str]) -> float:
    long = [w for w in words if len(w) > 1]
    return sum(w.isupper() for w in long) / len(long) if long else 0.0


def _ends_like_a_sentence(text: str) -> bool:
    return bool(_FINAL.search(text))


def _is_social(text: str) -> bool:
    """A post's signature, a platform link, or the hashtags and emoji that only posts carry."""
    if any(p.search(text) for p in _SOCIAL):
        return True
    hashtags = len(_HASHTAG.findall(text))
    emoji = len(_EMOJI.findall(text))
    # Hashtags and emoji are the texture of posts; news prose uses neither.
    return hashtags >= 2 or emoji > MAX_EMOJI or (hashtags >= 1 and emoji >= 1)


def _is_promo(text: str) -> bool:
    """Site furniture, boilerplate addressed to the reader, or an imperative call to action."""
    stripped = text.strip()
    if _FURNITURE.match(stripped):
        return True
    if any(p.search(stripped) for p in _PROMO_ANYWHERE):
        return True
    label = _LABEL.match(stripped)
    body = stripped[label.end():] if label else stripped
    # An imperative first verb aimed at the reader ("Watch all the action…", "Sign up for…").
    return bool(_CTA_START.match(body) and _CTA_TARGET.search(body))


def _is_caption(text: str) -> bool:
    return any(p.search(text) for p in _CAPTION)


def _is_byline(text: str, words: list[str]) -> bool:
    """A short line naming writers, or a timestamp standing alone: about the article, not in it."""
    stripped = text.strip()
    if _ONLY_DATE.match(stripped):
        return True
    if len(words) > BYLINE_MAX_WORDS:
        return False
    return any(p.match(stripped) for p in _BYLINE)


def _lowercase_words(words: list[str]) -> int:
    return sum(w[0].islower() for w in words)


def _is_title_case(words: list[str]) -> bool:
    """Every lowercase word is a short function word: "Apple Beats Estimates as iPhone Sales Soar"."""
    return len(words) >= TITLE_CASE_MIN_WORDS and all(w[0].isupper() or w.lower() in _FUNCTION_WORDS
                                                       for w in words)


def _is_table(text: str, words: list[str]) -> bool:
    """Cells split by pipes or tabs, or mostly numbers with no verb around them: a row, not a sentence."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return False
    if text.count("|") >= TABLE_MIN_SEPARATORS or "\t" in text:
        return True
    numbers = sum(bool(_NUMBER.match(t)) for t in tokens)
    if numbers < TABLE_MIN_NUMBERS:
        return False
    share = numbers / len(tokens)
    if not _ends_like_a_sentence(text):
        return share >= TABLE_DIGIT_SHARE_UNPUNCTUATED
    return share >= TABLE_DIGIT_SHARE and _lowercase_words(words) <= TABLE_MAX_LOWERCASE_WORDS


def _line_kind(text: str) -> str:
    """The kind of one sentence taken whole, before looking for a glued heading."""
    stripped = text.strip()
    bullet = _BULLET.match(stripped)
    if bullet and bullet.end() < len(stripped):
        stripped = stripped[bullet.end():]  # a list marker or a live-blog dash does not change the kind
    words = _words(stripped)
    if not words:
        return TABLE if _is_table(stripped, words) else FRAGMENT
    if _is_social(stripped):
        return SOCIAL
    if _is_promo(stripped):
        return PROMO
    if _is_caption(stripped):
        return CAPTION
    if _is_byline(stripped, words):
        return BYLINE
    if _is_table(stripped, words):
        return TABLE
    ends = _ends_like_a_sentence(stripped)
    if len(words) < MIN_PROSE_WORDS and not (ends and len(words) >= MIN_SHORT_SENTENCE_WORDS
                                             and _lowercase_words(words)):
        return FRAGMENT
    if _shout_share(words) >= SHOUT_SHARE:
        return HEADING  # a banner or a shouted heading
    if stripped.endswith(":"):
        return HEADING  # a lead-in to a list or a section label, not a statement
    if not ends and not (len(words) >= UNPUNCTUATED_PROSE_MIN_WORDS
                         and _capitalised_share(words) <= UNPUNCTUATED_PROSE_CAPS_SHARE):
        return HEADING  # a title, a list item or a dangling label: a quote needs a sentence's end
    if _is_title_case(words):
        return HEADING  # Title Case Throughout is a headline, even with a full stop
    return PROSE


def split_heading(sentence: str) -> tuple[str, str] | None:
    """``(heading, rest)`` when ``sentence`` is a heading or site furniture glued to prose, else None."""
    text = sentence.strip()
    lead = _LEADING_FURNITURE.match(text) or _LEADING_CREDIT.match(text)
    if lead:
        rest = text[lead.end():]
        return (text[:lead.end()].strip(), rest) if _line_kind(rest) == PROSE else None
    m = _COLON_HEADING.match(text)
    if not m:
        return None
    head, rest = m.group("head").strip(), m.group("rest")
    words = _words(head)
    if not words or len(words) > MAX_HEADING_WORDS or _SENTENCE_INSIDE.search(head):
        return None  # the part before the colon is itself a sentence
    if _is_caption(head + ": " + rest[:40]) or _is_byline(head, words):
        return None  # "Credit: AP Smith Jones went…": where the credit ends is unknowable
    if _SPEECH_VERB.search(head) or rest[0] in "\"“‘'":
        return None  # "She said: …" introduces speech, not a section
    if not (head.endswith("?") or "|" in head or _capitalised_share(words) >= HEADING_CAPS_SHARE):
        return None
    return (head, rest) if _line_kind(rest) == PROSE else None


def sentence_kind(text: str) -> str:
    """One of ``KINDS`` for a single sentence, decided from its text alone."""
    kind = _line_kind(text)
    if kind in (SOCIAL, PROMO, BYLINE):
        return kind  # whatever follows a post or an advert inside one sentence is not trusted
    if kind == CAPTION:
        return HEADING if _LEADING_CREDIT.match(text.strip()) and split_heading(text) else CAPTION
    if split_heading(text) is not None:
        return HEADING
    if kind == PROSE and _OWN_QUESTION.search(text) and not _QUOTED.search(text):
        return QUESTION
    return kind


def is_quotable(text: str) -> bool:
    """True when the whole sentence may be quoted as it stands."""
    return sentence_kind(text) == PROSE


def quotable_text(text: str) -> str | None:
    """The part of ``text`` that may be quoted: all of it, the prose after a glued heading, or None."""
    stripped = text.strip()
    kind = sentence_kind(stripped)
    if kind == PROSE:
        return stripped
    split = split_heading(stripped) if kind == HEADING else None
    return split[1] if split is not None else None
