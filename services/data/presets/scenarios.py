"""Generators of the preset scenarios (精调样板). Each answer is a rule over countable features of
its input — a score from an essay's paragraphs, idioms and conclusion; the fields a contract really
states; the intents a dialogue really raises — so a small model can learn the task offline and an
evaluation shows a true gain. Every generator is deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _user(text: str, system: str = "") -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# -- 作文批改: essay grading -----------------------------------------------------------------------

ESSAY_TOPICS = [
    "坚持",
    "成长",
    "家乡的变化",
    "科技与生活",
    "读书的乐趣",
    "友谊",
    "责任",
    "梦想",
    "劳动的意义",
    "传统文化",
]
IDIOMS = [
    "持之以恒",
    "脚踏实地",
    "锲而不舍",
    "日新月异",
    "水滴石穿",
    "厚积薄发",
    "全力以赴",
    "与时俱进",
    "百折不挠",
    "温故知新",
]
OPENINGS = [
    "{t}是人生中重要的一课。",
    "说起{t}，我总会想起许多往事。",
    "每个人都应该思考{t}的意义。",
    "{t}这个话题值得我们认真对待。",
]
BODY = [
    "小时候我并不明白这个道理，后来才慢慢懂得。",
    "生活中有许多例子可以说明这一点。",
    "老师常常告诉我们要多观察、多思考。",
    "遇到困难的时候，我们更需要冷静面对。",
    "身边的同学用行动给了我很大的启发。",
    "历史上也有不少人物留下了感人的故事。",
    "这让我明白，努力总会有回报。",
    "我们不能只看眼前，还要看到长远。",
]
IDIOM_SENTENCES = ["做事要{i}，才能有所收获。", "只有{i}，我们才能走得更远。", "他用{i}的精神打动了大家。"]
CONCLUSIONS = ["总之，{t}让我们变得更好。", "综上所述，我们应当重视{t}。"]


def essay(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    topic = rng.choice(ESSAY_TOPICS)
    paragraphs_count = rng.randint(2, 5)
    idiom_count = rng.randint(0, 4)
    has_conclusion = rng.random() < 0.5
    idioms = rng.sample(IDIOMS, idiom_count)
    paragraphs = [rng.choice(OPENINGS).format(t=topic) + rng.choice(BODY)]
    for _ in range(paragraphs_count - 1):
        paragraphs.append("".join(rng.sample(BODY, 2)))
    for i, idiom in enumerate(idioms):
        paragraphs[i % len(paragraphs)] += rng.choice(IDIOM_SENTENCES).format(i=idiom)
    if has_conclusion:
        paragraphs.append(rng.choice(CONCLUSIONS).format(t=topic))
    text = "\n".join(paragraphs)
    structure = min(paragraphs_count, 4) - 1  # 1..3
    score = 30 + 5 * structure + 3 * idiom_count + (8 if has_conclusion else 0)
    comment = (
        f"结构{'完整' if structure >= 2 else '较单薄'}，正文{paragraphs_count}段；"
        f"使用成语{idiom_count}个；{'有总结段' if has_conclusion else '缺少总结段'}。"
    )
    prompt = f"请批改下面这篇作文，给出得分（满分60分）和评语。\n题目：{topic}\n{text}"
    return _user(prompt), f"得分：{score}分\n评语：{comment}", {"score": score}


GAOKAO_RUBRIC = (
    "你是一名高考语文阅卷老师。请按照高考作文评分标准批改下面的作文。评分标准：满分60分，分为基础等级和发展等级。"
    "基础等级40分：内容20分（切合题意、中心突出、内容充实、思想健康、感情真挚），"
    "表达20分（符合文体要求、结构严谨、语言流畅、字体工整）；发展等级20分（深刻、丰富、有文采、有创意）。"
    "请先分别给出内容、表达、发展三项的得分和评语，最后给出最终得分。以JSON格式输出，"
    '形如{"内容": {"得分": "14分", "评语": "…"}, "表达": {"得分": "12分", "评语": "…"}, '
    '"发展": {"得分": "10分", "评语": "…"}, "最终得分": 36}。'
)


def long_essay(rng: random.Random, index: int, chars: int) -> tuple[str, str]:
    """A gaokao essay of about `chars` characters under Qianfan's grading instruction, and its grade
    in the JSON Qianfan's essay-grading case outputs (sub-scores first, the final score last)."""
    topic = rng.choice(ESSAY_TOPICS)
    idioms = rng.sample(IDIOMS, rng.randint(0, 4))
    has_conclusion = rng.random() < 0.5
    paragraphs = [rng.choice(OPENINGS).format(t=topic)]
    while sum(map(len, paragraphs)) < chars:
        paragraph = "".join(rng.sample(BODY, 4))
        if idioms and rng.random() < 0.3:
            paragraph += rng.choice(IDIOM_SENTENCES).format(i=idioms[len(paragraphs) % len(idioms)])
        paragraphs.append(paragraph)
    if has_conclusion:
        paragraphs.append(rng.choice(CONCLUSIONS).format(t=topic))
    content = 12 + 2 * len(idioms)
    expression = 10 + (6 if has_conclusion else 0)
    development = 8 + len(idioms)
    grade = {
        "内容": {"得分": f"{content}分", "评语": f"切题，使用成语{len(idioms)}个"},
        "表达": {"得分": f"{expression}分", "评语": "有总结段" if has_conclusion else "缺少总结段"},
        "发展": {"得分": f"{development}分", "评语": "论证较充分"},
        "最终得分": content + expression + development,
    }
    prompt = f"{GAOKAO_RUBRIC}\n作文题目：{topic}\n学生作文：\n" + "\n".join(paragraphs)
    return prompt, json.dumps(grade, ensure_ascii=False)


# -- 劳动合同关键信息提取: labor-contract extraction ---------------------------------------------------

COMPANIES = [
    "星河科技有限公司",
    "东方制造股份有限公司",
    "绿野物流有限公司",
    "华信软件有限公司",
    "长江餐饮管理有限公司",
]
SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军", "杰", "婷"]
POSITIONS = ["软件工程师", "仓库管理员", "销售代表", "行政助理", "厨师", "会计"]
CONTRACT_FIELDS = ("甲方", "乙方", "岗位", "合同期限", "月工资", "试用期")


def contract(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    start = 2020 + rng.randint(0, 5)
    values = {
        "甲方": rng.choice(COMPANIES),
        "乙方": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(["", rng.choice(GIVEN)]),
        "岗位": rng.choice(POSITIONS),
        "合同期限": f"{start}年{rng.randint(1, 12)}月1日至{start + rng.choice([1, 2, 3, 5])}年{rng.randint(1, 12)}月1日",
        "月工资": f"{rng.randrange(4000, 30000, 500)}元",
        "试用期": f"{rng.choice([1, 2, 3, 6])}个月",
    }
    present = {k: v for k, v in values.items() if k in ("甲方", "乙方") or rng.random() < 0.7}
    clauses = [f"用人单位（甲方）：{present['甲方']}", f"劳动者（乙方）：{present['乙方']}"]
    if "岗位" in present:
        clauses.append(f"第一条 乙方同意在甲方担任{present['岗位']}岗位工作。")
    if "合同期限" in present:
        clauses.append(f"第二条 本合同期限为{present['合同期限']}。")
    if "试用期" in present:
        clauses.append(f"第三条 试用期为{present['试用期']}，试用期包含在合同期限内。")
    if "月工资" in present:
        clauses.append(f"第四条 甲方每月按时支付乙方工资{present['月工资']}。")
    clauses.append("第五条 双方应遵守国家有关劳动保护的规定。")
    prompt = (
        "从下面的劳动合同中提取关键信息，输出JSON，字段为甲方、乙方、岗位、合同期限、月工资、试用期，合同未写明的字段填null。\n"
        + "\n".join(clauses)
    )
    answer = json.dumps({k: present.get(k) for k in CONTRACT_FIELDS}, ensure_ascii=False)
    return _user(prompt), answer, {"fields": present}


# -- 客服对话多标签生成: customer-service multi-label tagging -----------------------------------------

INTENTS = {
    "物流查询": ["我的快递到哪儿了？", "包裹三天了还没发货。", "能帮我查一下物流吗？"],
    "退换货": ["这件衣服尺码不对，我想换一件。", "我要申请退货。", "收到的商品想退掉。"],
    "价格咨询": ["这个商品还会降价吗？", "为什么昨天比今天便宜？", "买两件有优惠吗？"],
    "质量投诉": ["东西用了一天就坏了。", "收到的杯子有裂缝。", "衣服掉色很严重。"],
    "发票问题": ["能开发票吗？", "发票抬头写错了怎么办？", "电子发票在哪里下载？"],
    "优惠券": ["我的优惠券用不了。", "新人券怎么领取？", "优惠券过期了能补发吗？"],
}
AGENT_REPLIES = ["您好，请稍等，我帮您查询一下。", "非常抱歉给您带来不便。", "好的，我马上为您处理。"]


def tagging(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    labels = sorted(rng.sample(sorted(INTENTS), rng.randint(1, 3)))
    lines = []
    for label in labels:
        lines.append(f"顾客：{rng.choice(INTENTS[label])}")
        lines.append(f"客服：{rng.choice(AGENT_REPLIES)}")
    prompt = (
        "阅读下面的客服对话，给出顾客的意图标签（可多选："
        + "、".join(sorted(INTENTS))
        + "），用逗号分隔。\n"
        + "\n".join(lines)
    )
    return _user(prompt), "，".join(labels), {"labels": labels}


# -- 文本创作字数控制: word-count-controlled writing ---------------------------------------------------

WRITING_TOPICS = {
    "春天": [
        "春风吹过田野，小草悄悄探出了头。",
        "桃花开得正艳，蜜蜂在花间忙碌。",
        "孩子们在公园里放风筝，笑声传得很远。",
        "细雨过后，空气里满是泥土的清香。",
    ],
    "大海": [
        "海浪一次次拍打着礁石。",
        "远处的渔船在夕阳下慢慢归来。",
        "沙滩上留下了一串串脚印。",
        "海风带着咸咸的味道吹向岸边。",
    ],
    "城市夜晚": [
        "街灯一盏盏亮了起来。",
        "高楼的窗户像星星一样闪烁。",
        "夜市里飘来阵阵香味。",
        "晚归的人们加快了脚步。",
    ],
    "秋收": [
        "金黄的稻田像一片海洋。",
        "农民伯伯脸上露出了笑容。",
        "果园里的苹果又大又红。",
        "收割机在田间来回忙碌。",
    ],
    "冬雪": [
        "一夜之间，大地披上了白色的外衣。",
        "孩子们在院子里堆起了雪人。",
        "树枝上挂满了晶莹的冰凌。",
        "踩在雪上发出咯吱咯吱的声音。",
    ],
    "校园": [
        "操场上同学们正在跑步。",
        "图书馆里安静得能听见翻书声。",
        "教室的窗台上摆着几盆绿萝。",
        "下课铃一响，走廊里热闹起来。",
    ],
    "夏夜": [
        "萤火虫在草丛里一闪一闪。",
        "蝉声渐渐停了下来。",
        "老人们摇着扇子在树下乘凉。",
        "满天的星星眨着眼睛。",
    ],
    "老街": [
        "青石板路被岁月磨得发亮。",
        "街角的小店飘出豆浆的香味。",
        "墙上的爬山虎绿得发亮。",
        "老师傅坐在门口修着旧钟表。",
    ],
}
WRITING_PROMPTS = [
    "请以“{topic}”为主题，写一段恰好{target}个字（含标点）的短文。",
    "围绕“{topic}”写一段话，字数正好{target}字（标点也算）。",
    "描写{topic}，要求全文{target}个字，包括标点符号。",
]


def length_control(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    topic = rng.choice(sorted(WRITING_TOPICS))
    target = rng.randrange(20, 101, 2)
    text = ""
    while len(text) < target:
        text += "".join(rng.sample(WRITING_TOPICS[topic], len(WRITING_TOPICS[topic])))
    text = text[: target - 1] + "。"
    prompt = rng.choice(WRITING_PROMPTS).format(topic=topic, target=target)
    return _user(prompt), text, {"target_characters": target}


# -- 数学判题: math answer grading ---------------------------------------------------------------------


def math_grading(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["+", "-", "×"])
    correct = a + b if op == "+" else a - b if op == "-" else a * b
    right = rng.random() < 0.5
    student = correct if right else correct + rng.choice([-10, -2, -1, 1, 2, 10])
    prompt = f"请判断学生的答案是否正确，满分10分。\n题目：{a} {op} {b} = ?\n学生答案：{student}"
    answer = "判定：正确\n得分：10分" if right else f"判定：错误\n正确答案：{correct}\n得分：0分"
    return _user(prompt), answer, {"score": 10 if right else 0}


# -- 购物平台客服对话摘要: shopping dialogue summary ----------------------------------------------------

SATISFIED = ["好的，谢谢你，解决了。", "明白了，服务很好。"]
UNSATISFIED = ["还是没解决，太失望了。", "这个处理我不满意。"]


def dialogue_summary(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    category = rng.choice(sorted(INTENTS))
    satisfied = rng.random() < 0.5
    question = f"订单{rng.randint(100000, 999999)}：" + rng.choice(INTENTS[category])
    lines = [
        f"顾客：{question}",
        f"客服：{rng.choice(AGENT_REPLIES)}",
        f"顾客：{rng.choice(SATISFIED if satisfied else UNSATISFIED)}",
    ]
    prompt = "请总结下面的购物平台客服对话，给出问题类别、顾客满意度和一句话摘要。\n" + "\n".join(lines)
    answer = f"问题类别：{category}\n顾客满意度：{'满意' if satisfied else '不满意'}\n摘要：顾客咨询{category}相关问题，{'问题已解决' if satisfied else '顾客对处理结果不满意'}。"
    return _user(prompt), answer, {"category": category, "satisfied": satisfied}


# -- 英语口语练习: spoken-English practice ---------------------------------------------------------------

SUBJECTS = [
    "He",
    "She",
    "My brother",
    "Tom",
    "Our teacher",
    "My mother",
    "The boy",
    "Lucy",
    "My friend",
    "Grandpa",
]
PRESENT = [
    ("goes", "go", "to school every day"),
    ("plays", "play", "the piano after dinner"),
    ("watches", "watch", "TV on Sundays"),
    ("reads", "read", "a book every night"),
    ("drinks", "drink", "tea in the morning"),
    ("walks", "walk", "the dog after work"),
    ("cooks", "cook", "noodles on Fridays"),
    ("studies", "study", "English in the evening"),
    ("takes", "take", "the bus to work"),
    ("writes", "write", "a letter every month"),
    ("cleans", "clean", "the kitchen on Saturdays"),
    ("visits", "visit", "the museum twice a year"),
]
PAST_TIMES = [
    "Yesterday",
    "Last week",
    "Last night",
    "Two days ago",
    "Last summer",
    "Last Sunday",
    "This morning",
]
PAST_SUBJECTS = ["I", "we", "she", "they", "my parents", "our class"]
PAST = [
    ("went", "go", "to the park"),
    ("visited", "visit", "our grandmother"),
    ("cooked", "cook", "dinner together"),
    ("saw", "see", "a great film"),
    ("bought", "buy", "a new bike"),
    ("played", "play", "football"),
]


def spoken_english(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    if rng.random() < 0.5:
        subject = rng.choice(SUBJECTS)
        good, bad, rest = rng.choice(PRESENT)
        wrong, right = f"{subject} {bad} {rest}.", f"{subject} {good} {rest}."
        rule = f'With a third-person singular subject, use "{good}", not "{bad}".'
    else:
        start = f"{rng.choice(PAST_TIMES)} {rng.choice(PAST_SUBJECTS)}"
        good, bad, rest = rng.choice(PAST)
        wrong, right = f"{start} {bad} {rest}.", f"{start} {good} {rest}."
        rule = f'The sentence is about the past, so use "{good}", not "{bad}".'
    system = "You are a friendly English speaking partner. Correct the learner's sentence, explain briefly, then keep the conversation going."
    answer = f"Correction: {right}\n{rule}\nGreat effort! Can you tell me more about it?"
    return _user(wrong, system), answer, {"correct": right}


# -- 小说人物角色扮演 (KTO): novel character role-play ---------------------------------------------------

CHARACTERS = [
    (
        "西游记",
        "孙悟空",
        "俺老孙",
        ["俺老孙一个筋斗云便到了，何惧之有！", "师父莫怕，有俺老孙在！", "妖怪休走，吃俺老孙一棒！"],
    ),
    (
        "红楼梦",
        "林黛玉",
        "我",
        [
            "这花儿开得好，只怕明日又要谢了，叫人好不伤感。",
            "你们只管笑我，我原是个多心的。",
            "我本是草木之人，哪里比得上别人。",
        ],
    ),
    (
        "三国演义",
        "诸葛亮",
        "亮",
        ["亮夜观天象，知明日必有东风。", "主公勿忧，亮自有妙计。", "鞠躬尽瘁，死而后已，亮当尽力而为。"],
    ),
]
QUESTIONS = ["你今天心情怎么样？", "遇到困难时你会怎么办？", "你最在意的是什么？", "给我讲讲你最近的事吧。"]
OUT_OF_CHARACTER = [
    "作为一个AI语言模型，我没有心情。",
    "哈哈，这个问题我得上网查一下。",
    "我只是个程序，不太懂这些。",
    "OK啦，随便吧，无所谓。",
]


def role_play(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    novel, name, _, lines = rng.choice(CHARACTERS)
    system = f"你是《{novel}》中的{name}，请始终以{name}的身份、语气和口吻回答。"
    question = rng.choice(QUESTIONS)
    in_character = rng.random() < 0.5
    answer = rng.choice(lines) if in_character else rng.choice(OUT_OF_CHARACTER)
    return _user(question, system), answer, {"label": in_character, "reference": rng.choice(lines)}


# -- general corpora ---------------------------------------------------------------------------------

GENERAL_TASKS: list[Callable[[random.Random], tuple[str, str]]] = [
    lambda r: (lambda a, b: (f"计算 {a} 加 {b} 等于多少？", f"{a} 加 {b} 等于 {a + b}。"))(
        r.randint(1, 500), r.randint(1, 500)
    ),
    lambda r: (lambda w: (f"把“{w[0]}”翻译成英文。", f"“{w[0]}”的英文是 {w[1]}。"))(
        r.choice([("苹果", "apple"), ("学校", "school"), ("朋友", "friend"), ("书", "book"), ("天空", "sky")])
    ),
    lambda r: (lambda c: (f"{c[0]}的首都是哪里？", f"{c[0]}的首都是{c[1]}。"))(
        r.choice([("中国", "北京"), ("法国", "巴黎"), ("日本", "东京"), ("英国", "伦敦"), ("埃及", "开罗")])
    ),
    lambda r: (lambda n: (f"What is {n} times 3?", f"{n} times 3 is {n * 3}."))(r.randint(1, 300)),
    lambda r: (lambda w: (f'Give the opposite of "{w[0]}".', f'The opposite of "{w[0]}" is "{w[1]}".'))(
        r.choice([("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("up", "down")])
    ),
    lambda r: (
        lambda t: (
            f"用一句话介绍{t}。",
            f"{t}是{ {'长城': '中国古代修建的伟大防御工程', '熊猫': '生活在中国的珍稀动物', '春节': '中国最重要的传统节日', '太阳': '太阳系中心的恒星'}[t] }。",
        )
    )(r.choice(["长城", "熊猫", "春节", "太阳"])),
]


def general_instruction(rng: random.Random, index: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    question, answer = rng.choice(GENERAL_TASKS)(rng)
    return _user(question), answer, {}


def general_text(rng: random.Random, index: int) -> str:
    """A short document: a few sentences of plain Chinese or English prose."""
    pool = BODY + [s for lines in WRITING_TOPICS.values() for s in lines]
    if rng.random() < 0.3:
        english = [
            "The morning was quiet and the streets were still empty.",
            "Reading a little every day makes a big difference over a year.",
            "She opened the window and let the fresh air in.",
            "Good writing is clear, simple and honest.",
            "The old bridge has stood over the river for a hundred years.",
        ]
        return " ".join(rng.sample(english, 3))
    topic = rng.choice(ESSAY_TOPICS)
    return (
        rng.choice(OPENINGS).format(t=topic)
        + "".join(rng.sample(pool, 3))
        + rng.choice(CONCLUSIONS).format(t=topic)
    )
