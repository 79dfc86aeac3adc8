"""Small, permissively sourced lexicons used by the de-identifier.

The name lists are the most frequent US given names and surnames, typed from
the public-domain US Census Bureau 2010 surname table and Social Security
Administration baby-name statistics (facts, not copied files). They serve two
purposes: a feature of the learned tagger ("is a common name") and the pool of
surrogates. No name from the PhysioNet deid corpus is stored here.
"""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = tuple(
    """
james john robert michael william david richard joseph thomas charles christopher daniel matthew
anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward
jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin
samuel gregory alexander frank patrick raymond jack dennis jerry tyler aaron jose adam nathan henry
douglas zachary peter kyle ethan walter noah jeremy christian keith roger terry gerald harold sean
austin carl arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan albert willie
alan juan wayne elijah randy roy vincent ralph eugene russell bobby mason philip louis
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty margaret
sandra ashley kimberly emily donna michelle carol amanda dorothy melissa deborah stephanie rebecca
sharon laura cynthia kathleen amy angela shirley anna brenda pamela emma nicole helen samantha
katherine christine debra rachel carolyn janet catherine maria heather diane ruth julie olivia
joyce virginia victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah
jacqueline martha gloria teresa ann sara madison frances kathryn janice jean abigail alice judy
sophia grace denise amber doris marilyn danielle beverly isabella theresa diana natalie brittany
charlotte marie kayla alexis lori rose irene eleanor florence edith ethel agnes mildred
""".split()
)

LAST_NAMES: tuple[str, ...] = tuple(
    """
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark
ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams
nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker
cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper
peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james
bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster
jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher
vasquez simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno
west cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall
owens harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb
tucker guzman burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason
dixon munoz hunt hicks holmes palmer wagner black robertson boyd rose stone salazar fox warren
mills meyer rice schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne
grant dunn kelley spencer hawkins arnold pierce vazquez hansen peters santos hart bradley knight
elliott cunningham duncan armstrong hudson carroll lane riley andrews alvarado ray delgado berry
perkins hoffman johnston matthews pena richards contreras willis carpenter lawrence sandoval
""".split()
)

#: Surrogate place names (generic US town names that exist in many states).
CITIES: tuple[str, ...] = tuple(
    """
Springfield Franklin Greenville Clinton Fairview Salem Madison Georgetown Arlington Ashland Dover
Oxford Jackson Burlington Manchester Milton Newport Auburn Dayton Lexington Milford Riverside
Centerville Kingston Marion Winchester Bristol Chester Hudson Lebanon
""".split()
)

HOSPITALS: tuple[str, ...] = (
    "Riverside General Hospital",
    "Lakeview Medical Center",
    "Hillcrest Hospital",
    "Mercy Regional Hospital",
    "Oak Valley Clinic",
    "St. Anne Medical Center",
)


FIRST_SET = frozenset(FIRST_NAMES)
LAST_SET = frozenset(LAST_NAMES)

#: Words that introduce a clinician's name.
HCP_TITLES = frozenset("dr dr. doctor md np rn pa attending resident fellow nurse".split())
#: Words that introduce a relative or proxy.
RELATIVE_WORDS = frozenset(
    "wife husband son daughter mother father mom dad brother sister niece nephew aunt uncle "
    "grandson granddaughter cousin friend proxy hcp spouse partner fiance sibling".split()
)
MONTHS = "january february march april may june july august september october november december".split()
