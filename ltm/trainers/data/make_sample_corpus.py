"""Generate ``sample_zh.txt``, the small Chinese corpus bundled with the tiny-lm trainer.

How it was made, honestly: every sentence comes from the hand-written templates and word
lists in this file, written for this project (nothing is copied from a book, a web page or
another data set). A ``random.Random`` with a fixed seed picks a topic per paragraph, then
templates and words for each sentence, so the output is byte-for-byte reproducible:

    python ltm/trainers/data/make_sample_corpus.py            # rewrites ltm/trainers/data/sample_zh.txt
    python ltm/trainers/data/make_sample_corpus.py --check    # exits 1 if the committed file differs

The text is grammatical but repetitive by design: it is meant to let a character-level model
show a clearly falling loss within a hundred steps, not to teach it anything about the world.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

SEED = 20240601
TARGET_BYTES = 300_000
OUTPUT = Path(__file__).with_name("sample_zh.txt")

WORDS: dict[str, list[str]] = {
    "人": [
        "小王",
        "小李",
        "张老师",
        "陈工程师",
        "刘经理",
        "王同学",
        "赵医生",
        "我的同事",
        "研究员小周",
        "实习生小孙",
        "隔壁的阿姨",
        "我的室友",
        "项目负责人",
        "新来的运维",
        "数据标注组的小林",
    ],
    "时间": [
        "今天早上",
        "昨天晚上",
        "上周五",
        "这个月初",
        "周末",
        "中午吃饭以前",
        "凌晨两点",
        "下班以后",
        "春节前夕",
        "开会之前",
        "前天下午",
        "每天傍晚",
    ],
    "模型": [
        "一个七十亿参数的语言模型",
        "小型文本分类模型",
        "中文摘要模型",
        "问答模型",
        "翻译模型",
        "基座模型",
        "对话模型",
        "只有两层的小模型",
        "代码补全模型",
        "情感分析模型",
    ],
    "数据": [
        "新闻摘要数据集",
        "客服对话记录",
        "中文百科语料",
        "法律问答数据",
        "医疗问诊记录",
        "商品评论数据",
        "古诗词语料",
        "技术文档",
        "翻译平行语料",
        "用户反馈表",
    ],
    "超参": ["学习率", "批大小", "预热步数", "训练轮数", "权重衰减", "上下文长度", "随机种子", "梯度裁剪阈值"],
    "指标": ["训练损失", "验证损失", "困惑度", "准确率", "显存占用", "吞吐量", "GPU 利用率", "评估分数"],
    "变化": ["明显下降", "缓慢下降", "突然上升", "趋于平稳", "来回波动", "降到了新低", "没有变化"],
    "显卡": ["四张 A100", "八张 H100", "一张 4090", "两张 V100", "一台 CPU 服务器", "十六张 H800", "一张 T4"],
    "问题": [
        "显存不够",
        "损失变成了 NaN",
        "数据里有重复样本",
        "学习率设得太大",
        "检查点没有保存",
        "评估集和训练集混在了一起",
        "日志没有上传",
        "磁盘写满了",
        "网络突然中断",
    ],
    "办法": [
        "把批大小减半",
        "降低学习率",
        "重新清洗数据",
        "从上一个检查点恢复",
        "增加预热步数",
        "打开梯度裁剪",
        "换一个随机种子",
        "把评估集单独拆出来",
        "清理旧的检查点",
    ],
    "天气": ["晴朗", "暖和", "阴沉", "闷热", "寒冷", "干燥", "潮湿", "凉爽"],
    "降水": ["小雨", "大雨", "雷阵雨", "小雪", "大雪", "冰雹"],
    "城市": ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "重庆", "青岛", "昆明"],
    "冬衣": ["羽绒服", "毛衣", "厚棉衣", "围巾", "手套", "保暖内衣"],
    "雨具": ["雨伞", "雨衣", "雨靴", "一双防滑的鞋"],
    "食物": [
        "热干面",
        "小笼包",
        "牛肉面",
        "饺子",
        "米粉",
        "火锅",
        "煎饼果子",
        "番茄炒蛋",
        "青菜豆腐汤",
        "红烧肉",
        "白粥",
        "凉皮",
    ],
    "地点": ["公司楼下", "学校食堂", "地铁站旁边", "小区门口", "图书馆", "公园里", "菜市场", "火车站", "咖啡店"],
    "活动": ["跑步", "看书", "打羽毛球", "做饭", "散步", "整理房间", "学习英语", "画画", "下棋", "听音乐"],
    "交通": ["坐地铁", "坐公交车", "骑自行车", "打车", "骑电动车", "步行"],
    "书": ["一本关于统计学的书", "一本旧小说", "一本菜谱", "一本历史读物", "一本深度学习的入门教材", "一本旅行杂志"],
    "心情": ["很开心", "有点累", "松了一口气", "有些着急", "心情不错", "非常满意", "有点失望"],
    "数字": ["两", "三", "五", "十", "二十", "一百"],
    "步数": ["第一百步", "第三百步", "第五百步", "第一千步", "第三千步", "第八千步"],
    "月份": ["二月底", "三月初", "三月中旬", "四月初"],
    "高温": ["三十二度", "二十八度", "二十五度", "二十度"],
    "低温": ["十度", "六度", "三度", "零下两度"],
    "好心情": ["很开心", "心情不错", "非常满意", "觉得轻松了不少"],
}

TOPICS: dict[str, list[str]] = {
    "训练": [
        "{时间}，{人}在{显卡}上启动了一次训练，目标是微调{模型}。",
        "这次训练使用的是{数据}，一共跑了{数字}轮。",
        "{人}发现{指标}在{步数}{变化}，于是打开日志仔细查看。",
        "训练到{步数}的时候，{指标}{变化}，大家都{心情}。",
        "如果{问题}，最简单的办法往往是{办法}。",
        "{人}说，上次{问题}，后来{办法}才解决。",
        "为了让结果可以复现，{人}固定了{超参}，并把配置写进了运行记录。",
        "调整{超参}之后，{指标}{变化}。",
        "每一轮结束时，系统都会保存检查点，并在验证集上计算{指标}。",
        "训练中途被取消以后，可以从最近的检查点继续，损失曲线和没有中断时完全一样。",
        "{人}把{超参}从原来的值改小了一半，{指标}随后{变化}。",
        "看板上显示，{显卡}的 GPU 利用率一直{变化}。",
        "{人}提醒大家，先用小数据跑通流程，再用{数据}做正式训练。",
        "这次实验的结论是：{超参}对{指标}的影响比预想的更大。",
        "{时间}，训练任务因为{问题}而失败，{人}{心情}。",
        "在比较了几次运行之后，{人}选择了{指标}最好的那个检查点。",
    ],
    "机器学习": [
        "语言模型的任务是根据前面的文字预测下一个字。",
        "损失越低，说明模型对下一个字的预测越准确。",
        "困惑度是损失取指数以后的结果，可以理解为模型在每一步犹豫的候选数量。",
        "学习率太大，训练容易发散；学习率太小，损失又下降得很慢。",
        "预热阶段的学习率从零开始线性增加，之后再按照余弦曲线慢慢减小。",
        "注意力机制让每个位置都能看到它前面的所有文字。",
        "{模型}在{数据}上训练以后，{指标}通常会{变化}。",
        "把数据分成训练集和验证集，是为了检查模型有没有过拟合。",
        "批大小越大，每一步看到的样本越多，梯度也越平稳。",
        "同样的随机种子和同样的数据顺序，可以得到完全相同的训练结果。",
        "{人}认为，{数据}的质量比数量更重要。",
        "层数和隐藏维度决定了模型的大小，也决定了训练需要的显存。",
        "优化器会根据梯度更新参数，同时记录动量等状态。",
        "检查点里不仅有模型权重，还有优化器状态和当前的步数。",
        "{人}正在读一本深度学习的入门教材，想弄明白反向传播的细节。",
        "评估的时候不计算梯度，所以速度更快，显存占用也更少。",
    ],
    "天气": [
        "{城市}今天的天气很{天气}，{人}说这样的天气最适合{活动}。",
        "{城市}今天的最低气温是{低温}，最高气温是{高温}，早晚温差比较大。",
        "天气预报说，{城市}明天有{降水}，出门最好带上{雨具}。",
        "{人}看了看窗外，发现外面在下{降水}，于是决定在家{活动}。",
        "这几天{城市}一直很{天气}，大家出门前都会先看一眼天气预报。",
        "因为下了{降水}，{人}{交通}去上班，路上比平时慢了半个小时。",
        "{城市}的春天来得早，{月份}就已经有十八度了。",
        "下雨的时候，{地点}总是挤满了等车的人。",
        "{人}说，{城市}的冬天虽然冷，但是空气很干净。",
        "气温从{高温}一下子降到了{低温}，{人}赶紧翻出了{冬衣}。",
        "{时间}突然下起了{降水}，{人}只好在{地点}躲了一会儿。",
    ],
    "生活": [
        "{时间}，{人}在{地点}吃了一碗{食物}，觉得味道不错。",
        "{人}每天{交通}上班，路上大约需要四十分钟。",
        "周末的时候，{人}喜欢去{地点}{活动}。",
        "{人}最近在学做{食物}，已经试了{数字}次。",
        "{时间}，{人}在{地点}遇到了{人}，两个人聊了很久。",
        "{人}买了{书}，打算每天睡前读几页。",
        "吃完{食物}以后，{人}和朋友一起去{活动}。",
        "{人}把房间整理干净以后，{好心情}。",
        "{地点}新开了一家店，专门卖{食物}，排队的人很多。",
        "{人}觉得，每天{活动}半个小时，精神会好很多。",
        "{时间}，{人}忘了带钥匙，只好在{地点}等家人回来。",
        "{人}的周末计划是先{活动}，然后去{地点}买菜，晚上做{食物}。",
    ],
}

CONNECTIVES = ["", "", "", "后来，", "另外，", "不过，", "与此同时，", "所以，", "其实，", "总的来说，"]
TITLES = {"训练": "训练记录", "机器学习": "学习笔记", "天气": "天气", "生活": "生活"}


def fill(template: str, rng: random.Random) -> str:
    """Replace each {slot} with a word from its list; a slot used twice gets two different words."""
    out, rest, used = [], template, set()
    while "{" in rest:
        before, _, after = rest.partition("{")
        slot, _, rest = after.partition("}")
        out.append(before)
        word = rng.choice([word for word in WORDS[slot] if word not in used])
        used.add(word)
        out.append(word)
    out.append(rest)
    return "".join(out)


def paragraph(rng: random.Random) -> str:
    topic = rng.choice(list(TOPICS))
    templates = TOPICS[topic]
    sentences = []
    for index, template in enumerate(rng.sample(templates, rng.randint(3, 6))):
        sentence = fill(template, rng)
        if index:
            connective = rng.choice(CONNECTIVES)
            # A connective only joins sentences that do not already open with a time phrase or a conjunction.
            openers = (*WORDS["时间"], "因为", "如果", "在", "为了")
            if connective and not sentence.startswith(openers):
                sentence = connective + sentence
        sentences.append(sentence)
    return f"【{TITLES[topic]}】" + "".join(sentences)


def generate(seed: int = SEED, target_bytes: int = TARGET_BYTES) -> str:
    rng = random.Random(seed)
    paragraphs, size = [], 0
    while size < target_bytes:
        text = paragraph(rng)
        paragraphs.append(text)
        size += len(text.encode()) + 1
    return "\n".join(paragraphs) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text
        print("sample_zh.txt is up to date" if same else "sample_zh.txt differs from the generator output")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.encode())} bytes, {len(text)} characters, {len(set(text))} distinct)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
