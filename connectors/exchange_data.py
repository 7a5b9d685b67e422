"""Generated, reproducible data of the demo data exchange, and its operation schemas.

Every record is made from one seeded ``random.Random``: the same seed gives the same data.
Codes carry valid check characters: 统一社会信用代码 per GB 32100-2015 (with the GB 11714
organisation-code check inside), 18-digit citizen ID per GB 11643 (ISO 7064 MOD 11-2).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def uscc_check(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check(first8: str) -> str:
    """GB 11714 check character: digits count 0-9, letters A-Z count 10-35 (not their place in
    the USCC alphabet)."""
    total = sum(int(c, 36) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def valid_uscc(code: str) -> bool:
    code = (code or "").upper()
    return (len(code) == 18 and all(c in USCC_ALPHABET for c in code)
            and uscc_check(code[:17]) == code[17] and org_code_check(code[8:16]) == code[16])


def id_check(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def valid_id(number: str) -> bool:
    number = (number or "").upper()
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return id_check(number[:17]) == number[17]


REGIONS = {  # 行政区划代码 → name
    "310115": "上海市浦东新区", "310101": "上海市黄浦区", "310104": "上海市徐汇区", "310105": "上海市长宁区",
    "310106": "上海市静安区", "310107": "上海市普陀区", "310110": "上海市杨浦区", "310112": "上海市闵行区",
    "330102": "杭州市上城区", "330106": "杭州市西湖区", "110105": "北京市朝阳区", "440305": "深圳市南山区",
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍鹏辉玲建国建华志强海燕晓东晓明文博子涵雨轩思远欣怡浩然梓萱一鸣佳怡"
TRADE = ["好邻居", "全家福", "便利蜂", "快客", "联华", "良友", "喜士多", "可的", "罗森", "美宜佳", "十足", "易捷",
         "老街坊", "新天地", "金桥", "陆家嘴", "张江", "外滩", "静安", "徐汇", "云间", "海上", "申城", "沪上"]
KINDS = [("便利店", "食品销售；烟草制品零售；日用百货销售"), ("餐饮管理", "餐饮服务；食品销售"),
         ("健身服务", "体育健康服务；健身休闲活动"), ("书店", "出版物零售；文具用品零售"),
         ("药房", "药品零售；第二类医疗器械销售"), ("超市", "食品销售；日用百货销售；酒类经营"),
         ("咖啡", "餐饮服务；食品销售"), ("宾馆", "住宿服务；餐饮服务")]
ROADS = ["世纪大道", "张杨路", "浦东南路", "东方路", "南京西路", "淮海中路", "延安西路", "中山北路", "龙阳路",
         "金科路", "碧波路", "长宁路", "天目西路", "曲阳路", "四平路"]
ISSUERS = {
    "food": ("食品经营许可证", "JY", "市场监督管理局"),
    "tobacco": ("烟草专卖零售许可证", "", "烟草专卖局"),
    "drug": ("药品经营许可证", "沪", "药品监督管理局"),
    "publication": ("出版物经营许可证", "新出发", "文化和旅游局"),
    "business": ("营业执照", "", "市场监督管理局"),
}


@dataclass
class Dataset:
    seed: int
    enterprises: dict[str, dict] = field(default_factory=dict)
    persons: dict[str, dict] = field(default_factory=dict)
    licences: dict[str, dict] = field(default_factory=dict)
    licences_by_holder: dict[str, list[str]] = field(default_factory=dict)
    blacklist: dict[str, dict] = field(default_factory=dict)
    properties: dict[str, dict] = field(default_factory=dict)
    leases_by_lessee: dict[str, list[dict]] = field(default_factory=dict)


def _person(rng: random.Random, used: set[str]) -> dict:
    while True:
        region = rng.choice(list(REGIONS))
        born = date(1955, 1, 1) + timedelta(days=rng.randrange(0, 365 * 48))
        seq = rng.randrange(0, 1000)
        body = f"{region}{born:%Y%m%d}{seq:03d}"
        number = body + id_check(body)
        if number not in used:
            used.add(number)
            break
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))
    return {"id_number": number, "name": name, "gender": "男" if seq % 2 else "女",
            "birth_date": born.isoformat(), "address": f"{REGIONS[region]}{rng.choice(ROADS)}{rng.randrange(1, 2000)}号",
            "phone": f"1{rng.choice('3589')}{rng.randrange(0, 10**9):09d}", "status": "正常"}


def _uscc(rng: random.Random, region: str) -> str:
    body8 = "".join(rng.choice(USCC_ALPHABET[:10] + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    org = body8 + org_code_check(body8)
    first17 = "91" + region + org
    return first17 + uscc_check(first17)


def generate(seed: int = 20240601, size: int = 3000) -> Dataset:
    rng = random.Random(seed)
    ds = Dataset(seed=seed)
    used: set[str] = set()
    for _ in range(size):
        p = _person(rng, used)
        ds.persons[p["id_number"]] = p
    people = list(ds.persons.values())
    today = date(2024, 6, 1)
    for i in range(size):
        region = rng.choice(list(REGIONS))
        code = _uscc(rng, region)
        while code in ds.enterprises:
            code = _uscc(rng, region)
        kind, scope = rng.choice(KINDS)
        rep = rng.choice(people)
        established = today - timedelta(days=rng.randrange(30, 365 * 20))
        address = f"{REGIONS[region]}{rng.choice(ROADS)}{rng.randrange(1, 3000)}号{rng.randrange(1, 30)}层"
        ent = {"uscc": code, "enterprise_name": f"{REGIONS[region][:2]}{rng.choice(TRADE)}{kind}有限公司",
               "entity_type": "有限责任公司(自然人投资或控股)", "legal_rep": rep["name"],
               "legal_rep_id": rep["id_number"], "registered_capital": f"{rng.choice([10, 50, 100, 200, 500])}万元人民币",
               "established_on": established.isoformat(), "address": address, "business_scope": scope,
               "registration_authority": f"{REGIONS[region]}市场监督管理局",
               "status": "注销" if i % 53 == 0 else "存续"}
        ds.enterprises[code] = ent
        # e-licences: the business licence plus one or two permits
        kinds = ["business"] + rng.sample(["food", "tobacco", "drug", "publication"], rng.choice([0, 1, 2]))
        for k in kinds:
            title, prefix, issuer = ISSUERS[k]
            number = (code if k == "business" else
                      f"{prefix}{region}{rng.randrange(0, 10**8):08d}" if k != "tobacco" else f"{region}{rng.randrange(0, 10**6):06d}")
            issued = established + timedelta(days=rng.randrange(0, 60))
            valid_to = issued + timedelta(days=365 * 5) if k != "business" else None
            lic = {"licence_no": number, "licence_name": title, "licence_type": k, "type_code": f"{kinds.index(k) + 11000:05d}",
                   "holder": ent["enterprise_name"], "holder_code": code, "holder_code_type": "001",
                   "issuer": f"{REGIONS[region]}{issuer}", "issuer_code": f"{region}{kinds.index(k):03d}",
                   "issued_on": issued.isoformat(), "valid_from": issued.isoformat(),
                   "valid_to": valid_to.isoformat() if valid_to else "长期",
                   "status": "有效" if valid_to is None or valid_to >= today else "已过期"}
            ds.licences[number] = lic
            ds.licences_by_holder.setdefault(code, []).append(number)
        # premises: owned (real-estate certificate) or leased (lease filing)
        area = round(rng.uniform(30, 800), 2)
        if rng.random() < 0.3:
            cert = f"沪({established.year})浦字不动产权第{rng.randrange(0, 10**7):07d}号"
            ds.properties[cert] = {"cert_no": cert, "owner": ent["enterprise_name"], "owner_code": code,
                                   "address": address, "area_m2": area, "use": "商业",
                                   "registered_on": established.isoformat()}
            ds.leases_by_lessee.setdefault(code, [])
        else:
            owner = rng.choice(people)
            cert = f"沪({established.year - 3})浦字不动产权第{rng.randrange(0, 10**7):07d}号"
            ds.properties[cert] = {"cert_no": cert, "owner": owner["name"], "owner_code": owner["id_number"],
                                   "address": address, "area_m2": area, "use": "商业",
                                   "registered_on": (established - timedelta(days=900)).isoformat()}
            start = established
            ds.leases_by_lessee.setdefault(code, []).append({
                "filing_no": f"租备{region}{rng.randrange(0, 10**7):07d}", "cert_no": cert,
                "lessor": owner["name"], "lessee": ent["enterprise_name"], "lessee_code": code,
                "address": address, "area_m2": area, "start": start.isoformat(),
                "end": (start + timedelta(days=365 * rng.choice([3, 5, 10]))).isoformat()})
    # 严重失信主体名单: about 3% of enterprises and 1% of persons
    reasons = ["拒不履行法院判决", "食品安全严重违法", "偷税漏税", "虚假承诺", "拒不执行行政处罚决定"]
    for code in rng.sample(list(ds.enterprises), size * 3 // 100):
        ds.blacklist[code] = {"subject": ds.enterprises[code]["enterprise_name"], "reason": rng.choice(reasons),
                              "listed_on": (today - timedelta(days=rng.randrange(1, 900))).isoformat(),
                              "authority": "信用中国（上海）"}
    for number in rng.sample(list(ds.persons), size // 100):
        ds.blacklist[number] = {"subject": ds.persons[number]["name"], "reason": rng.choice(reasons),
                                "listed_on": (today - timedelta(days=rng.randrange(1, 900))).isoformat(),
                                "authority": "信用中国（上海）"}
    return ds


def _obj(props: dict, required=()) -> dict:
    return {"type": "object", "properties": props, "required": list(required)}


S = {"type": "string"}
B = {"type": "boolean"}

# operation name → (title, input schema, output schema); outputs always carry "found"
OPERATIONS: dict[str, tuple[str, dict, dict]] = {
    "enterprise": ("企业登记信息（营业执照）", _obj({"uscc": S}, ["uscc"]), _obj({
        "found": B, "uscc": {**S, "title": "统一社会信用代码"}, "enterprise_name": {**S, "title": "企业名称"},
        "entity_type": {**S, "title": "企业类型"},
        "legal_rep": {**S, "title": "法定代表人"}, "legal_rep_id": {**S, "title": "法定代表人身份证号", "sensitive": "id"},
        "registered_capital": {**S, "title": "注册资本"}, "established_on": {**S, "title": "成立日期"},
        "address": {**S, "title": "住所"}, "business_scope": {**S, "title": "经营范围"},
        "registration_authority": {**S, "title": "登记机关"}, "status": {**S, "title": "登记状态"},
    }, ["found"])),
    "identity": ("身份核验（人口库）", _obj({"id_number": S, "name": S}, ["id_number", "name"]), _obj({
        "found": B, "id_valid": {**B, "title": "身份证号码有效"}, "name_match": {**B, "title": "姓名与身份证号一致"},
        "gender": {**S, "title": "性别"}, "birth_date": {**S, "title": "出生日期"},
        "address": {**S, "title": "户籍地址", "sensitive": "other"},
        "phone": {**S, "title": "手机号", "sensitive": "phone"},
    }, ["found", "name_match"])),
    "licences": ("电子证照库（按持证主体）", _obj({"holder_code": S}, ["holder_code"]), _obj({
        "found": B, "licences": {"type": "array", "title": "电子证照"}, "count": {"type": "integer"},
    }, ["found"])),
    "licence": ("电子证照（按证照编号）", _obj({"licence_no": S}, ["licence_no"]), _obj({
        "found": B, "licence_no": S, "licence_name": S, "licence_type": S, "type_code": S, "holder": S,
        "holder_code": S, "holder_code_type": S, "issuer": S, "issuer_code": S, "issued_on": S,
        "valid_from": S, "valid_to": S, "licence_status": S,
    }, ["found"])),
    "credit": ("严重失信主体名单", _obj({"subject_code": S}, ["subject_code"]), _obj({
        "found": B, "blacklisted": {**B, "title": "是否严重失信"}, "blacklist_reason": {**S, "title": "失信原因"},
        "listed_on": {**S, "title": "列入日期"}, "list_authority": {**S, "title": "列入机关"},
    }, ["found", "blacklisted"])),
    "property": ("不动产登记", _obj({"cert_no": S}, ["cert_no"]), _obj({
        "found": B, "cert_no": S, "owner": S, "owner_code": {**S, "sensitive": "id"}, "property_address": S,
        "area_m2": {"type": "number"}, "property_use": S, "registered_on": S,
    }, ["found"])),
    "premises": ("经营场所（产权或租赁备案）", _obj({"uscc": S}, ["uscc"]), _obj({
        "found": B, "premises_address": {**S, "title": "经营场所"},
        "premises_kind": {**S, "title": "场所性质（自有/租赁）"},
        "premises_area_m2": {"type": "number", "title": "面积（平方米）"}, "cert_no": {**S, "title": "不动产权证号"},
        "lease_filing_no": {**S, "title": "租赁备案号"}, "lease_end": {**S, "title": "租赁到期日"},
    }, ["found"])),
    "tobacco_layout": ("烟草零售点布局（烟草专卖局）", _obj({"address": {**S, "title": "经营场所地址"}}, ["address"]), _obj({
        "found": B, "nearest_retailer_m": {"type": "number", "title": "与最近零售点的距离（米）"},
        "retailers_within_100m": {"type": "integer", "title": "100米内零售点数量"},
        "nearest_retailer": {**S, "title": "最近的零售点"},
    }, ["found"])),
    "push_registration": ("登记信息推送（部门接收回执）", _obj({
        "department": {**S, "title": "接收部门"}, "uscc": {**S, "title": "统一社会信用代码"},
        "enterprise_name": {**S, "title": "企业名称"}, "items": {**S, "title": "推送事项"},
    }, ["department", "uscc"]), _obj({
        "found": B, "received": {**B, "title": "是否已接收"}, "receipt_no": {**S, "title": "回执编号"},
        "department": {**S, "title": "接收部门"}, "received_at": {**S, "title": "接收时间"},
    }, ["found", "received"])),
}

# Operations whose answer depends on the exchange's own state (not only on the dataset):
# the server answers them itself.
STATEFUL = {"push_registration"}

SHOP_KINDS = ["便利店", "烟酒店", "食杂店", "超市", "烟酒商行"]


def tobacco_layout(address: str) -> dict:
    """The tobacco bureau's layout data for an address: the nearest licensed retailer and how many
    are within 100 m. Deterministic (SHA-256 of the address, whitespace removed); about 15 % of
    addresses are closer than 50 m to an existing retailer."""
    key = "".join(str(address or "").split())
    if not key:
        return {"found": False}
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < 0.15:
        metres = 8 + 41.9 * (u / 0.15)  # 8.0 … 49.9
    else:
        metres = 50 + 450 * ((u - 0.15) / 0.85)  # 50.0 … 499.9
    metres = int(metres * 10) / 10
    within = 0 if metres >= 100 else 1 + digest[8] % (3 if metres < 50 else 2)
    road = next((r for r in ROADS if r in key), ROADS[digest[9] % len(ROADS)])
    name = f"{TRADE[digest[10] % len(TRADE)]}{SHOP_KINDS[digest[11] % len(SHOP_KINDS)]}（{road}店）"
    return {"found": True, "nearest_retailer_m": metres, "retailers_within_100m": within, "nearest_retailer": name}


def query(ds: Dataset, operation: str, inputs: dict) -> dict:
    """The answer of one operation; unknown subjects give ``found: false``."""
    if operation == "enterprise":
        e = ds.enterprises.get(str(inputs.get("uscc", "")).upper())
        return {"found": True, **e} if e else {"found": False}
    if operation == "identity":
        number = str(inputs.get("id_number", "")).upper()
        p = ds.persons.get(number)
        if p is None:
            return {"found": False, "id_valid": valid_id(number), "name_match": False}
        return {"found": True, "id_valid": True, "name_match": p["name"] == inputs.get("name"),
                "gender": p["gender"], "birth_date": p["birth_date"], "address": p["address"], "phone": p["phone"]}
    if operation == "licences":
        nos = ds.licences_by_holder.get(str(inputs.get("holder_code", "")).upper(), [])
        items = [ds.licences[n] for n in nos]
        return {"found": bool(items), "licences": items, "count": len(items)}
    if operation == "licence":
        lic = ds.licences.get(str(inputs.get("licence_no", "")))
        if not lic:
            return {"found": False}
        out = {k: v for k, v in lic.items() if k != "status"}
        return {"found": True, **out, "licence_status": lic["status"]}
    if operation == "credit":
        code = str(inputs.get("subject_code", "")).upper()
        hit = ds.blacklist.get(code)
        known = code in ds.enterprises or code in ds.persons
        if not hit:
            return {"found": known, "blacklisted": False}
        return {"found": True, "blacklisted": True, "blacklist_reason": hit["reason"],
                "listed_on": hit["listed_on"], "list_authority": hit["authority"]}
    if operation == "property":
        p = ds.properties.get(str(inputs.get("cert_no", "")))
        if not p:
            return {"found": False}
        return {"found": True, "cert_no": p["cert_no"], "owner": p["owner"], "owner_code": p["owner_code"],
                "property_address": p["address"], "area_m2": p["area_m2"], "property_use": p["use"],
                "registered_on": p["registered_on"]}
    if operation == "premises":
        code = str(inputs.get("uscc", "")).upper()
        if code not in ds.leases_by_lessee:
            return {"found": False}
        leases = ds.leases_by_lessee[code]
        if leases:
            lease = leases[0]
            return {"found": True, "premises_kind": "租赁", "premises_address": lease["address"],
                    "premises_area_m2": lease["area_m2"], "cert_no": lease["cert_no"],
                    "lease_filing_no": lease["filing_no"], "lease_end": lease["end"]}
        owned = next(p for p in ds.properties.values() if p["owner_code"] == code)
        return {"found": True, "premises_kind": "自有", "premises_address": owned["address"],
                "premises_area_m2": owned["area_m2"], "cert_no": owned["cert_no"]}
    if operation == "tobacco_layout":
        return tobacco_layout(str(inputs.get("address", "")))
    raise KeyError(operation)
