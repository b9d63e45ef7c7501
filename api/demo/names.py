"""Plausible Chinese names for the demo county: places, staff and parties.

Everything is drawn from a ``random.Random`` the caller owns, so a seed always
gives the same county and the same people. The names are invented; any match
with a real person or village is chance.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
)
# The common surnames are much commoner: the first twenty carry about half the weight.
SURNAME_WEIGHTS = tuple(6 if i < 20 else 2 if i < 50 else 1 for i in range(len(SURNAMES)))

GIVEN_MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞斌宇浩凯健俊帆峰建国志永海波亮东林成德新文博彬"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英兰桂梅玉凤红琳燕晶雪莉萍婷慧颖洁玲春丹倩冬月菊"

COUNTY_NAMES = ("阳和县", "清源县", "安丰县", "永宁县", "河间县", "云台县", "丰泽县", "平陆县")

TOWNSHIP_STEMS = tuple(
    "龙泉 罗文 大白 古城 东井 王官 长城 狮子 友宰 下深 马家 北徐 南庄 清水 石门 黄土 杏园 柳林 青山 红星 双河 桃园 新安 永和 太平 兴隆 丰收 安乐 白塔 金沙 孙仁 西岗".split()
)
VILLAGE_HEADS = tuple("王李张刘赵陈周杨孙郭马高许韩冯曹东西南北前后上下大小新老中河岗石")
VILLAGE_MIDDLES = ("", "", "", "家", "家", "官", "堡", "里")
VILLAGE_TAILS = tuple("庄屯营堡寨沟洼坡湾河店楼窑岭园集口")
COMMUNITY_STEMS = (
    "幸福",
    "和平",
    "建设",
    "文化",
    "人民",
    "光明",
    "朝阳",
    "东城",
    "西关",
    "南关",
    "北关",
    "新华",
    "育才",
    "友谊",
    "振兴",
    "金达",
    "锦绣",
    "阳光",
    "滨河",
    "府前",
    "迎宾",
    "银河",
)
SUBDISTRICT_STEMS = ("城关", "龙城", "鼓楼", "府西")

CHINESE_NUMERALS = "零一二三四五六七八九十"


def chinese_number(n: int) -> str:
    """1 → 一, 12 → 十二, 21 → 二十一 (enough for grid and building numbers)."""
    if n < 0 or n > 99:
        raise ValueError(f"{n} is out of range")
    if n <= 10:
        return CHINESE_NUMERALS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CHINESE_NUMERALS[tens]
    return head + "十" + (CHINESE_NUMERALS[ones] if ones else "")


class Names:
    """Draws names that do not repeat (a person's name is their id on the ladder)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._people: set[str] = set()
        self._places: set[str] = set()

    def person(self) -> str:
        """A unique full name: surname plus one or two given characters."""
        for _ in range(10_000):
            name = self._full_name()
            if name not in self._people:
                self._people.add(name)
                return name
        raise RuntimeError("ran out of distinct names")

    def party(self) -> str:
        """A party's name (may repeat: parties are not ladder ids)."""
        return self._full_name()

    def _full_name(self) -> str:
        rng = self.rng
        surname = rng.choices(SURNAMES, weights=SURNAME_WEIGHTS)[0]
        pool = GIVEN_MALE if rng.random() < 0.55 else GIVEN_FEMALE
        given = "".join(rng.choice(pool) for _ in range(1 if rng.random() < 0.3 else 2))
        return surname + given

    def _unique_place(self, draw) -> str:
        for _ in range(10_000):
            name = draw()
            if name not in self._places:
                self._places.add(name)
                return name
        raise RuntimeError("ran out of distinct place names")

    def county(self) -> str:
        return self.rng.choice(COUNTY_NAMES)

    def township(self) -> str:
        return self._unique_place(
            lambda: self.rng.choice(TOWNSHIP_STEMS) + ("镇" if self.rng.random() < 0.7 else "乡")
        )

    def subdistrict(self) -> str:
        return self._unique_place(lambda: self.rng.choice(SUBDISTRICT_STEMS) + "街道")

    def village(self) -> str:
        rng = self.rng
        return self._unique_place(
            lambda: (
                rng.choice(VILLAGE_HEADS)
                + rng.choice(VILLAGE_MIDDLES)
                + rng.choice(VILLAGE_TAILS)
                + "村"
            )
        )

    def community(self) -> str:
        return self._unique_place(lambda: self.rng.choice(COMMUNITY_STEMS) + "社区")

    def phone(self) -> str:
        rng = self.rng
        return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))

    def id_number(self, area_code: str) -> str:
        """A well-formed 18-digit 居民身份证号 (GB 11643 check digit) for a made-up person."""
        rng = self.rng
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
        body = f"{area_code[:6]:0<6}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
        weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
        check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
        return body + check
