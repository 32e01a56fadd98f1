"""Static catalogues for the demo data: models and prices, names, datasets,
agent templates and sample texts. Data only; the generators live beside it.

Texts use ``str.format`` placeholders ({num}, {cat}, {dataset}…) that the
generators fill.
"""

from typing import NamedTuple

# --------------------------------------------------------------------------
# Sizes at --scale 1 (multiplied by the scale, never below one)
# --------------------------------------------------------------------------

BASE_COUNTS = {
    "organizations": 8,
    "aa_users": 130,
    "aa_chats": 1300,
    "aa_reports": 150,
    "ds_users": 60,
    "ds_chats": 500,
    "tts_users": 60,
    "tts_chats": 650,
    "tts_api_queries": 300,
    "aic_users": 50,
    "aic_chats": 550,
    "perf_metrics": 2000,
    "user_budgets": 10,
}

# One core.Source per application kind: (name, description)
SOURCES = {
    "auto_analyst": (
        "Auto-Analyst (demo)",
        "Demo data in the shape of Auto-Analyst's database (manage.py seed_demo).",
    ),
    "ds_ml_agent": (
        "DS-ML agent (demo)",
        "Demo data in the shape of the DS-ML agent's database (manage.py seed_demo).",
    ),
    "text_to_sql": (
        "Text-to-SQL (demo)",
        "Demo data in the shape of the text-to-SQL app's database (manage.py seed_demo).",
    ),
    "ai_chat_v2": (
        "AI Chat v2 (demo)",
        "Demo data in the shape of AI Chat v2's database (manage.py seed_demo).",
    ),
}

# --------------------------------------------------------------------------
# LLMs: name, provider, USD per million tokens (None = no price known),
# mean feedback rating, time to first token, output tokens per second
# --------------------------------------------------------------------------


class LLM(NamedTuple):
    name: str
    provider: str
    input_price: str | None
    output_price: str | None
    quality: float
    ttft_ms: int
    tokens_per_s: int
    reasoning: bool = False


MODELS = [
    LLM("gpt-4o-mini", "openai", "0.15", "0.60", 3.7, 450, 85),
    LLM("gpt-4o", "openai", "2.50", "10.00", 4.1, 600, 70),
    LLM("gpt-4.1", "openai", "2.00", "8.00", 4.2, 650, 65),
    LLM("gpt-4.1-mini", "openai", "0.40", "1.60", 3.9, 500, 80),
    LLM("o3-mini", "openai", "1.10", "4.40", 4.0, 2500, 120, True),
    LLM("o3", "openai", "2.00", "8.00", 4.4, 6000, 60, True),
    LLM("claude-3-5-haiku-latest", "anthropic", "0.80", "4.00", 3.6, 700, 60),
    LLM("claude-sonnet-4-20250514", "anthropic", "3.00", "15.00", 4.5, 1100, 55),
    LLM("claude-3-7-sonnet-latest", "anthropic", "3.00", "15.00", 4.3, 1000, 55),
    LLM("gemini-2.0-flash", "google", "0.10", "0.40", 3.4, 350, 160),
    LLM("gemini-1.5-pro", "google", "1.25", "5.00", 3.8, 900, 60),
    LLM("gemini-2.5-flash", "google", "0.30", "2.50", 4.0, 600, 140),
    LLM("llama-3.3-70b-versatile", "groq", "0.59", "0.79", 3.1, 200, 280),
    LLM("llama-3.1-8b-instant", "groq", "0.05", "0.08", 2.6, 120, 750),
    # Served by Groq but missing from the price list: its rows stay unpriced.
    LLM("gemma2-9b-it", "groq", None, None, 2.5, 150, 500),
]

# One price change inside the window: o3 was cut from 10/40 to 2/8
# (the MODELS row holds the new price).
PRICE_CHANGE = {
    "model": "o3",
    "provider": "openai",
    "old_input": "10.00",
    "old_output": "40.00",
    "days_ago": 41,
}

# Which models each application's users pick, with weights.
AA_MODEL_WEIGHTS = {
    "gpt-4o-mini": 24,
    "gpt-4o": 9,
    "gpt-4.1": 7,
    "gpt-4.1-mini": 6,
    "o3-mini": 4,
    "o3": 3,
    "claude-3-5-haiku-latest": 7,
    "claude-sonnet-4-20250514": 11,
    "claude-3-7-sonnet-latest": 4,
    "gemini-2.0-flash": 9,
    "gemini-1.5-pro": 3,
    "gemini-2.5-flash": 5,
    "llama-3.3-70b-versatile": 8,
    "llama-3.1-8b-instant": 2,
    "gemma2-9b-it": 1,
}
TTS_MODEL_WEIGHTS = {
    "gpt-4o-mini": 45,
    "gpt-4.1-mini": 20,
    "gpt-4o": 15,
    "claude-3-5-haiku-latest": 12,
    "gemini-2.0-flash": 8,
}
AIC_MODEL_WEIGHTS = {
    "gpt-4o": 30,
    "gpt-4o-mini": 35,
    "gpt-4.1": 15,
    "claude-sonnet-4-20250514": 20,
}

# --------------------------------------------------------------------------
# Time: activity by hour of day (UTC; Europe afternoon + US morning peak)
# --------------------------------------------------------------------------

HOUR_WEIGHTS = [
    2,
    1,
    1,
    1,
    1,
    2,
    3,
    5,
    7,
    9,
    10,
    10,
    10,
    11,
    12,
    12,
    11,
    10,
    8,
    7,
    6,
    5,
    4,
    3,
]
WEEKEND_FACTOR = 0.45
# The most recent day is this many times busier than the oldest one.
GROWTH = 1.8

# --------------------------------------------------------------------------
# Organisations and people
# --------------------------------------------------------------------------

ORG_NAMES = [
    "Acme Corp",
    "TechStart Inc",
    "Globex Analytics",
    "Initech",
    "Northwind Traders",
    "Umbrella Health",
    "Stark Logistics",
    "Hooli Retail",
    "Contoso Energy",
    "Vandelay Industries",
    "Wayne Biotech",
    "Soylent Foods",
    "Cyberdyne Systems",
    "Tyrell Mobility",
    "Oscorp Labs",
    "Pied Piper",
    "Massive Dynamic",
    "Aperture Science",
    "Fabrikam Finance",
    "Litware Media",
]
ORG_NAME_SUFFIXES = ["Europe", "Labs", "Group", "Digital", "Holdings", "US", "APAC"]

FIRST_NAMES = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Steven",
    "Emily",
    "Andrew",
    "Michelle",
    "Joshua",
    "Amanda",
    "Kevin",
    "Melissa",
    "Brian",
    "Stephanie",
    "George",
    "Rebecca",
    "Priya",
    "Arjun",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Carlos",
    "Lucia",
    "Mateo",
    "Sofia",
    "Ahmed",
    "Fatima",
    "Olga",
    "Ivan",
    "Lars",
    "Ingrid",
    "Kwame",
    "Amara",
    "Chen",
    "Aisha",
    "Pierre",
    "Camille",
    "Jonas",
    "Lena",
    "Diego",
    "Valentina",
    "Omar",
    "Leila",
    "Raj",
    "Ananya",
    "Tomasz",
    "Zofia",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Patel",
    "Shah",
    "Kumar",
    "Singh",
    "Wang",
    "Zhang",
    "Liu",
    "Chen",
    "Tanaka",
    "Sato",
    "Kim",
    "Park",
    "Nguyen",
    "Muller",
    "Schmidt",
    "Rossi",
    "Bianchi",
    "Dubois",
    "Laurent",
    "Silva",
    "Santos",
    "Kowalski",
    "Nowak",
    "Okafor",
    "Mensah",
    "Haddad",
    "Larsen",
    "Johansson",
    "Ivanova",
    "Petrov",
    "Novak",
    "Costa",
    "Ferreira",
    "Moreau",
]
PUBLIC_EMAIL_DOMAINS = [
    ("gmail.com", 40),
    ("outlook.com", 12),
    ("yahoo.com", 6),
    ("proton.me", 5),
    ("icloud.com", 6),
    ("hotmail.com", 4),
    ("stanford.edu", 2),
    ("mit.edu", 2),
    ("ethz.ch", 1),
]

USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "python-requests/2.32.3",
    "text2sql-cli/1.4.2 (+https://pypi.org/project/requests/)",
]
DEVICES = [
    {"browser": "Chrome 126", "os": "macOS 14.5", "device": "desktop"},
    {"browser": "Chrome 125", "os": "Windows 11", "device": "desktop"},
    {"browser": "Edge 126", "os": "Windows 11", "device": "desktop"},
    {"browser": "Safari 17.5", "os": "macOS 14.5", "device": "desktop"},
    {"browser": "Firefox 127", "os": "Ubuntu 24.04", "device": "desktop"},
    {"browser": "Safari 17.5", "os": "iOS 17.5", "device": "mobile"},
]

# --------------------------------------------------------------------------
# Datasets analysed in Auto-Analyst and the DS-ML agent.
# numeric: (column, typical mean, typical std, decimals); categorical: levels
# --------------------------------------------------------------------------

DATASETS = [
    {
        "name": "Housing",
        "file": "Housing.csv",
        "rows": 545,
        "numeric": [
            ("price", 4766729, 1870440, 0),
            ("area", 5150, 2170, 0),
            ("bedrooms", 3, 0.74, 0),
            ("bathrooms", 1.3, 0.5, 0),
            ("stories", 1.8, 0.87, 0),
            ("parking", 0.7, 0.86, 0),
        ],
        "categorical": {
            "mainroad": ["yes", "no"],
            "airconditioning": ["yes", "no"],
            "furnishingstatus": ["furnished", "semi-furnished", "unfurnished"],
            "prefarea": ["yes", "no"],
        },
        "target": "price",
        "topic": "house prices",
    },
    {
        "name": "Sales 2024",
        "file": "sales_data_2024.csv",
        "rows": 12450,
        "numeric": [
            ("total_revenue", 125430.5, 34567.9, 2),
            ("ad_spend", 18250.0, 6120.4, 2),
            ("units_sold", 842, 231, 0),
            ("discount_pct", 7.5, 4.1, 1),
        ],
        "categorical": {
            "region": ["North", "South", "East", "West", "Central"],
            "product_line": ["Hardware", "Software", "Services", "Accessories"],
            "channel": ["online", "retail", "partner"],
        },
        "target": "total_revenue",
        "topic": "sales performance",
    },
    {
        "name": "Titanic",
        "file": "titanic.csv",
        "rows": 891,
        "numeric": [("Age", 29.7, 14.5, 1), ("Fare", 32.2, 49.7, 2), ("SibSp", 0.52, 1.1, 0)],
        "categorical": {
            "Sex": ["male", "female"],
            "Pclass": ["1", "2", "3"],
            "Embarked": ["S", "C", "Q"],
        },
        "target": "Survived",
        "topic": "passenger survival",
    },
    {
        "name": "Telco churn",
        "file": "telco_customer_churn.csv",
        "rows": 7043,
        "numeric": [
            ("tenure", 32.4, 24.6, 0),
            ("MonthlyCharges", 64.8, 30.1, 2),
            ("TotalCharges", 2283.3, 2266.8, 2),
        ],
        "categorical": {
            "Contract": ["Month-to-month", "One year", "Two year"],
            "PaymentMethod": ["Electronic check", "Mailed check", "Bank transfer", "Credit card"],
            "InternetService": ["DSL", "Fiber optic", "No"],
        },
        "target": "Churn",
        "topic": "customer churn",
    },
    {
        "name": "Marketing campaign",
        "file": "marketing_campaign.csv",
        "rows": 2240,
        "numeric": [
            ("Income", 52247, 25173, 0),
            ("Recency", 49, 29, 0),
            ("MntWines", 304, 337, 0),
            ("NumWebPurchases", 4.1, 2.8, 0),
        ],
        "categorical": {
            "Education": ["Basic", "Graduation", "Master", "PhD"],
            "Marital_Status": ["Single", "Married", "Together", "Divorced"],
        },
        "target": "Response",
        "topic": "campaign response",
    },
    {
        "name": "HR attrition",
        "file": "hr_employee_attrition.csv",
        "rows": 1470,
        "numeric": [
            ("Age", 36.9, 9.1, 0),
            ("MonthlyIncome", 6503, 4708, 0),
            ("YearsAtCompany", 7.0, 6.1, 0),
            ("JobSatisfaction", 2.7, 1.1, 0),
        ],
        "categorical": {
            "Department": ["Sales", "Research & Development", "Human Resources"],
            "OverTime": ["Yes", "No"],
            "BusinessTravel": ["Non-Travel", "Travel_Rarely", "Travel_Frequently"],
        },
        "target": "Attrition",
        "topic": "employee attrition",
    },
    {
        "name": "Sensor readings",
        "file": "sensor_readings.csv",
        "rows": 45000,
        "numeric": [
            ("temperature", 71.3, 6.2, 2),
            ("pressure", 101.2, 3.4, 2),
            ("vibration", 0.42, 0.17, 3),
        ],
        "categorical": {
            "sensor_id": ["S-101", "S-102", "S-103", "S-104", "S-105"],
            "status": ["normal", "warning", "failure"],
        },
        "target": "status",
        "topic": "predictive maintenance",
    },
]

# --------------------------------------------------------------------------
# Auto-Analyst conversations
# --------------------------------------------------------------------------

# intent: (weight, agents it involves)
AA_INTENTS = {
    "preprocess": (18, ["preprocessing_agent"]),
    "stats": (18, ["preprocessing_agent", "statistical_analytics_agent"]),
    "ml": (16, ["preprocessing_agent", "sk_learn_agent", "data_viz_agent"]),
    "viz": (24, ["data_viz_agent"]),
    "qa": (14, ["basic_qa_agent"]),
    "features": (10, ["feature_engineering_agent", "sk_learn_agent"]),
}

AA_QUESTIONS = {
    "preprocess": [
        "Clean the dataset: handle missing values in {num} and encode {cat}.",
        "Are there missing values or outliers in {num}? Fix them if so.",
        "Drop duplicate rows and standardise the {cat} labels.",
        "Normalise {num} and {num2} so they are on the same scale.",
    ],
    "stats": [
        "What is the correlation between {num} and {num2}?",
        "Run a regression of {target} on {num} and {num2}. Which one is significant?",
        "Is the difference in {num} between {cat} groups statistically significant?",
        "Give me descriptive statistics for {num} broken down by {cat}.",
    ],
    "ml": [
        "Build a model to predict {target} and show feature importance.",
        "Cluster the rows using {num} and {num2}. How many segments make sense?",
        "Train a random forest for {target} and report accuracy on a hold-out set.",
        "Which features drive {target} the most? Use a tree-based model.",
    ],
    "viz": [
        "Plot the distribution of {num}.",
        "Show me a bar chart of average {num} by {cat}.",
        "Create a scatter plot of {num} vs {num2} coloured by {cat}.",
        "Make a box plot of {num} for each {cat}.",
        "Visualise the correlation matrix of the numeric columns.",
    ],
    "qa": [
        "Give me a quick summary of this dataset.",
        "What does the {cat} column represent?",
        "Which columns would you drop before modelling {target}?",
        "Explain what a p-value of 0.03 means for my {num} analysis.",
    ],
    "features": [
        "Create new features from {num} and {num2} that could help predict {target}.",
        "Engineer interaction features and check whether they improve the {target} model.",
        "Bin {num} into quantiles and one-hot encode {cat}.",
    ],
}

AA_TITLE_PREFIXES = ["", "", "", "Analysis: ", "Q: "]

AGENT_SUMMARIES = {
    "preprocessing_agent": [
        "I cleaned the dataset: {missing} missing values in `{num}` were filled with the "
        "median and `{cat}` was label-encoded.",
        "Duplicates were removed ({dupes} rows) and numeric columns were converted to the "
        "right dtypes.",
    ],
    "statistical_analytics_agent": [
        "An OLS regression of `{target}` on `{num}` and `{num2}` gives R² = {r2}. `{num}` is "
        "significant (p = {p}).",
        "The Pearson correlation between `{num}` and `{num2}` is {r}, a {strength} relationship.",
    ],
    "sk_learn_agent": [
        "A RandomForest model reaches {metric} on the 20% hold-out set. The most important "
        "feature is `{num}`.",
        "K-means with k={k} gives a silhouette score of {sil}; the segments differ mostly "
        "in `{num}`.",
    ],
    "data_viz_agent": [
        "Here is an interactive Plotly chart of `{num}` by `{cat}`.",
        "The chart below shows how `{num}` relates to `{num2}`.",
    ],
    "basic_qa_agent": [
        "The dataset has {rows} rows and {ncols} columns. Numeric columns include `{num}` and "
        "`{num2}`; `{cat}` is categorical.",
        "`{cat}` is a categorical column with a handful of levels; it is best one-hot encoded "
        "before modelling `{target}`.",
    ],
    "feature_engineering_agent": [
        "I created `{num}_per_{num2}`, `log_{num}` and quantile bins of `{num}`; together they "
        "lift the baseline by {lift}.",
        "Interaction terms between `{num}` and `{cat}` were added and checked for leakage.",
    ],
}

AA_INSIGHTS = [
    "`{num}` is right-skewed; a log transform makes it close to normal.",
    "`{cat}` has a strong effect on `{num}` (largest gap between groups: {gap}%).",
    "About {missing} rows had missing values and were imputed.",
    "`{num2}` adds little once `{num}` is in the model.",
    "There are {outliers} outliers above the 99th percentile of `{num}`.",
    "The relationship between `{num}` and `{num2}` looks non-linear at high values.",
]

CODE_TEMPLATES = {
    "preprocessing_agent": """import pandas as pd
import numpy as np

df_cleaned = df.copy()
df_cleaned = df_cleaned.drop_duplicates()
numeric_cols = df_cleaned.select_dtypes(include="number").columns
for col in numeric_cols:
    df_cleaned[col] = df_cleaned[col].fillna(df_cleaned[col].median())
df_cleaned["{cat}"] = df_cleaned["{cat}"].astype("category").cat.codes
print(df_cleaned.isna().sum())
print(df_cleaned.describe())""",
    "statistical_analytics_agent": """import statsmodels.api as sm

X = df_cleaned[["{num}", "{num2}"]].dropna()
y = df_cleaned.loc[X.index, "{target}"].astype(float)
X = sm.add_constant(X)
model = sm.OLS(y, X).fit()
print(model.summary())
print(df_cleaned[["{num}", "{num2}"]].corr())""",
    "sk_learn_agent": """from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import train_test_split
from sklearn.metrics import r2_score

features = [c for c in df_cleaned.select_dtypes("number").columns if c != "{target}"]
X_train, X_test, y_train, y_test = train_test_split(
    df_cleaned[features], df_cleaned["{target}"], test_size=0.2, random_state=42
)
model = RandomForestRegressor(n_estimators=300, random_state=42)
model.fit(X_train, y_train)
print("R2:", r2_score(y_test, model.predict(X_test)))
importances = pd.Series(model.feature_importances_, index=features)
print(importances.sort_values(ascending=False).head(10))""",
    "data_viz_agent": """import plotly.express as px

grouped = df.groupby("{cat}", as_index=False)["{num}"].mean()
fig = px.bar(
    grouped, x="{cat}", y="{num}", title="Average {num} by {cat}", template="plotly_white"
)
fig.update_layout(height=480, xaxis_title="{cat}", yaxis_title="{num}")
fig.show()""",
    "basic_qa_agent": """print(df.shape)
print(df.dtypes)
print(df["{cat}"].value_counts())""",
    "feature_engineering_agent": """import numpy as np

df_features = df_cleaned.copy()
df_features["{num}_per_{num2}"] = df_features["{num}"] / df_features["{num2}"].replace(0, np.nan)
df_features["log_{num}"] = np.log1p(df_features["{num}"])
df_features["{num}_bin"] = pd.qcut(df_features["{num}"], q=4, labels=False, duplicates="drop")
df_features = pd.get_dummies(df_features, columns=["{cat}"], drop_first=True)
print(df_features.head())""",
}

# The fix an agent applied when its first attempt failed.
CODE_FIX_NOTES = [
    "# fixed: use the column name as it appears in the dataset",
    "# fixed: coerce non-numeric values before the computation",
    "# fixed: create df_cleaned before using it",
    "# fixed: replace the removed DataFrame.append with pd.concat",
]

# Error types of generated code: (exception line, how the fixed code differs)
CODE_ERRORS = [
    "KeyError: '{badcol}'",
    "ValueError: could not convert string to float: 'N/A'",
    "ModuleNotFoundError: No module named 'xgboost'",
    "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    "SyntaxError: invalid syntax",
    "NameError: name 'df_cleaned' is not defined",
    "AttributeError: 'DataFrame' object has no attribute 'append'",
    "ValueError: Input X contains NaN.",
    "TypeError: Object of type Timestamp is not JSON serializable",
]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/src/managers/code_runner.py", line 88, in execute_code\n'
    "    exec(compiled, namespace)\n"
    '  File "<string>", line {line}, in <module>\n'
    "{error}"
)

# --------------------------------------------------------------------------
# Auto-Analyst agent templates
# --------------------------------------------------------------------------

AGENT_TEMPLATES = [
    {
        "name": "preprocessing_agent",
        "display": "Data Preprocessing Agent",
        "category": "Data Manipulation",
        "premium": False,
        "description": "Cleans and prepares a DataFrame with pandas and NumPy: missing values, "
        "column types, dates and duplicates.",
        "role": "You clean and prepare data so later agents can trust it.",
        "rules": [
            "Work on a copy: `df_cleaned = df.copy()`.",
            "Fill numeric gaps with the median and categorical gaps with the mode.",
            "Convert date-like strings with `pd.to_datetime(errors='coerce')`.",
            "Never invent rows or read files: `df` is already loaded.",
        ],
    },
    {
        "name": "statistical_analytics_agent",
        "display": "Statistical Analytics Agent",
        "category": "Data Modelling",
        "premium": False,
        "description": "Regression, hypothesis tests and seasonal decomposition with "
        "statsmodels, handling categorical data correctly.",
        "role": "You answer statistical questions with statsmodels and explain the result.",
        "rules": [
            "Wrap string columns in `C(col)` in formulas.",
            "Always add a constant with `sm.add_constant()`.",
            "Drop or impute missing values before fitting.",
            "Print the model summary and the key coefficients.",
        ],
    },
    {
        "name": "sk_learn_agent",
        "display": "Machine Learning Agent",
        "category": "Data Modelling",
        "premium": False,
        "description": "Trains and evaluates scikit-learn models: classification, regression "
        "and clustering, with feature importance.",
        "role": "You build and evaluate machine-learning models with scikit-learn.",
        "rules": [
            "Split train and test data; set `random_state=42`.",
            "Report the metric that fits the task (accuracy, F1, R², silhouette).",
            "Print feature importances when the model has them.",
            "Leave charts to the data_viz_agent.",
        ],
    },
    {
        "name": "data_viz_agent",
        "display": "Data Visualization Agent",
        "category": "Data Visualization",
        "premium": False,
        "description": "Interactive Plotly charts, choosing the chart type that best shows the "
        "comparison or trend asked for.",
        "role": "You turn data into clear interactive Plotly charts.",
        "rules": [
            "Use plotly.express or plotly.graph_objects, never matplotlib.",
            "Follow the styling instructions: {styling_instructions}",
            "Aggregate large data before plotting (more than 50,000 points).",
            "End with `fig.show()`.",
        ],
    },
    {
        "name": "basic_qa_agent",
        "display": "Basic Q&A Agent",
        "category": "Data Manipulation",
        "premium": False,
        "variant": "both",
        "description": "Answers general questions about the dataset and about data analysis "
        "without running heavy code.",
        "role": "You answer questions about the dataset and analysis concepts in plain words.",
        "rules": [
            "Prefer a short direct answer; add code only when it helps.",
            "Say so when the dataset cannot answer the question.",
        ],
    },
    {
        "name": "feature_engineering_agent",
        "display": "Feature Engineering Agent",
        "category": "Data Modelling",
        "premium": True,
        "description": "Creates ratio, log, bin and interaction features and checks them for "
        "leakage.",
        "role": "You create features that help a model without leaking the target.",
        "rules": [
            "Name new columns after their inputs (`a_per_b`, `log_a`).",
            "Never use the target `{target}` to build a feature.",
            "Report which features you added and why.",
        ],
    },
    {
        "name": "polars_agent",
        "display": "Polars Agent",
        "category": "Data Manipulation",
        "premium": True,
        "description": "Fast data wrangling with Polars lazy frames for large files.",
        "role": "You manipulate large data with Polars instead of pandas.",
        "rules": [
            "Convert with `pl.from_pandas(df)` and use lazy queries.",
            "Collect only at the end; return a pandas frame for later agents.",
        ],
    },
    {
        "name": "matplotlib_agent",
        "display": "Matplotlib Agent",
        "category": "Data Visualization",
        "premium": True,
        "individual_only": True,
        "description": "Static publication-quality charts with matplotlib and seaborn.",
        "role": "You make static charts with matplotlib and seaborn for reports.",
        "rules": [
            "Use a readable style and label both axes.",
            "Save the figure to `{output_path}` as PNG at 150 dpi.",
        ],
    },
    {
        "name": "web_search_agent",
        "display": "Web Search Agent",
        "category": "Research",
        "premium": True,
        "variant": "both",
        "description": "Searches the web for context, benchmarks and definitions to enrich an "
        "analysis.",
        "role": "You look up external context that the dataset does not contain.",
        "rules": [
            "Cite every source with its URL.",
            "Never paste more than two sentences from one source.",
        ],
    },
    {
        "name": "lightgbm_agent",
        "display": "LightGBM Agent (legacy)",
        "category": "Data Modelling",
        "premium": True,
        "individual_only": True,
        "active": False,
        "description": "Gradient boosting with LightGBM. Retired: sk_learn_agent covers it.",
        "role": "You train gradient-boosted trees with LightGBM.",
        "rules": ["Use early stopping on a validation set."],
    },
]

AGENT_PROMPT_INTRO = (
    "You are the {display} of Auto-Analyst, a multi-agent data analytics system. {role}"
)
AGENT_PROMPT_GIVEN = (
    "You are given:\n* A dataset, already loaded as `df`: {{dataset}}\n* The user's goal: {{goal}}"
)
AGENT_PROMPT_PLANNER = (
    "* plan_instructions from the planner (required): {{plan_instructions}}\n"
    "  - 'create': the variables you must create\n"
    "  - 'use': the variables you may read\n"
    "  - 'instruction': what this step has to do\n\n"
    "Follow plan_instructions exactly: create only the variables listed in 'create' so the "
    "next agent in the pipeline finds them."
)
AGENT_PROMPT_OUTPUT = (
    "### Output\n"
    "1. Code: Python that does the step, with comments in English.\n"
    "2. Summary: two to four sentences on what was done and what it shows.\n\n"
    "Respond in the user's language for the summary; keep the code in English."
)

# --------------------------------------------------------------------------
# Deep analysis (Auto-Analyst)
# --------------------------------------------------------------------------

DEEP_GOALS = [
    "What drives {target} in the {dataset} data, and what should we do about it?",
    "Give me a complete analysis of {topic}: key drivers, segments and recommendations.",
    "Find the main factors behind {target} and quantify their effect.",
    "Analyse how {num} varies across {cat} and whether it explains {target}.",
    "Build a full report on {topic} for the leadership meeting.",
]
DEEP_QUESTIONS = [
    "How is {target} distributed, and are there outliers?",
    "Which numeric variables correlate most strongly with {target}?",
    "Does {num} differ significantly between {cat} groups?",
    "Can a model predict {target} from the available features, and how well?",
    "Which segments of {cat} behave differently over the range of {num}?",
    "How much of the variance in {target} do {num} and {num2} explain together?",
]
DEEP_PLAN_STEPS = [
    "preprocessing_agent: clean the data, impute missing values, encode {cat}",
    "statistical_analytics_agent: correlations and an OLS model of {target}",
    "sk_learn_agent: random forest with feature importance for {target}",
    "data_viz_agent: distribution of {num}, {num} by {cat}, {num} vs {num2}",
]
DEEP_SYNTHESIS = [
    "{num} is the strongest single driver of {target}.",
    "{cat} segments differ by up to {gap}% in {num}.",
    "A random forest explains {r2pct}% of the variance in {target}.",
    "{num2} matters only in combination with {num}.",
    "Data quality is good: {missing} missing values out of {rows} rows.",
]
DEEP_CONCLUSIONS = [
    "The analysis shows that {num} and {cat} together explain most of the variation in "
    "{target}. Focus on the {cat} segments with the highest {num}; the model is reliable "
    "enough (R² {r2}) to prioritise them, and the remaining variance is likely driven by "
    "factors not in the dataset.",
    "{target} is mainly shaped by {num}. {num2} adds little once {num} is known. We "
    "recommend monitoring {num} by {cat} monthly and revisiting the model when new data "
    "arrives.",
]

# --------------------------------------------------------------------------
# DS-ML agent sessions
# --------------------------------------------------------------------------

DS_PROJECTS = [
    ("Q{quarter} Sales Analysis", ["sales", "quarterly"], 1),
    ("Customer Segmentation", ["ml", "clustering"], 3),
    ("Predictive Maintenance", ["ml", "time_series", "production"], 6),
    ("Churn Drivers Review", ["churn", "retention"], 3),
    ("Campaign Response Model", ["marketing", "ml"], 4),
    ("Attrition Risk Study", ["hr", "classification"], 5),
    ("Housing Price Benchmark", ["pricing", "regression"], 0),
    ("Literature Review: {paper_topic}", ["research", "papers"], None),
]
DS_PAPER_TOPICS = [
    "Transformer Forecasting",
    "Causal Uplift Models",
    "Anomaly Detection in IoT",
    "Graph Neural Networks for Fraud",
]
DS_LAST_ACTIVITY = ["data_visualization", "model_training", "file_upload", "statistics", "chat"]

# agent_type: [(user message, agent response)]
DS_TURNS = {
    "csv_analysis": [
        (
            "Load the data from {file}",
            "I've loaded **{file}**. The dataset contains {rows:,} rows and {ncols} columns: "
            "{columns}.",
        ),
        (
            "Which columns have missing values?",
            "`{num}` has {missing} missing values ({missing_pct}%); all other columns are "
            "complete. I suggest median imputation for `{num}`.",
        ),
        (
            "Show me the first rows grouped by {cat}",
            "Here is a preview grouped by `{cat}`: the largest group holds {share}% of the rows.",
        ),
    ],
    "statistical_analysis": [
        (
            "Show me the summary statistics",
            "Summary statistics for `{num}`: mean {mean}, median {median}, std {std}. The "
            "distribution is {skew}.",
        ),
        (
            "Can you analyze the correlation between {num} and {num2}?",
            "The Pearson coefficient between `{num}` and `{num2}` is {r}, indicating a "
            "{strength} relationship (p < 0.001).",
        ),
        (
            "Is {num} different across {cat}?",
            "A one-way ANOVA gives F = {f} (p = {p}); `{num}` differs significantly across "
            "`{cat}`.",
        ),
    ],
    "ml_analysis": [
        (
            "Perform k-means clustering on the data",
            "I've performed k-means clustering with k={k}. The silhouette score is {sil}. "
            "Cluster sizes: {sizes}.",
        ),
        (
            "Train a model to predict {target}",
            "A gradient boosting model reaches {metric} on the hold-out set. Top features: "
            "`{num}`, `{num2}`.",
        ),
        (
            "Detect anomalies in {num}",
            "An Isolation Forest flags {anomalies} anomalous rows (contamination 1%), mostly "
            "at high `{num}`.",
        ),
    ],
    "research_paper": [
        (
            "Summarize the methodology of the uploaded paper",
            "The paper on *{paper_topic}* trains on {rows:,} samples, compares {k} baselines "
            "and reports a {lift} improvement over the strongest one.",
        ),
        (
            "What are the limitations the authors mention?",
            "The authors note three limitations: a single-domain dataset, no ablation of the "
            "attention module, and compute costs that are not reported.",
        ),
    ],
}
DS_FILE_TYPES = {"csv": 70, "xlsx": 18, "pdf": 12}
DS_ANALYSIS_TYPES = {
    "csv_analysis": "csv",
    "statistical_analysis": "statistical",
    "ml_analysis": "ml",
    "research_paper": "research_paper",
}
DS_LIBRARIES = {
    "csv": {"pandas": "2.1.0"},
    "statistical": {"pandas": "2.1.0", "numpy": "1.24.3", "scipy": "1.11.2"},
    "ml": {"scikit-learn": "1.3.0", "pandas": "2.1.0"},
    "research_paper": {"pypdf": "3.17.1", "langchain": "0.0.340"},
}

# --------------------------------------------------------------------------
# Text-to-SQL
# --------------------------------------------------------------------------

# database name -> (db_type, tables: {table: [(column, type, nullable)]})
SQL_DATABASES = {
    "ecommerce_prod": (
        "postgresql",
        {
            "customers": [
                ("id", "integer", False),
                ("name", "varchar(200)", False),
                ("email", "varchar(255)", False),
                ("country", "varchar(2)", True),
                ("created_at", "timestamp", False),
            ],
            "orders": [
                ("id", "integer", False),
                ("customer_id", "integer", False),
                ("status", "varchar(20)", False),
                ("total", "numeric(12,2)", False),
                ("payment_method", "varchar(30)", True),
                ("created_at", "timestamp", False),
            ],
            "order_items": [
                ("id", "integer", False),
                ("order_id", "integer", False),
                ("product_id", "integer", False),
                ("quantity", "integer", False),
                ("unit_price", "numeric(10,2)", False),
            ],
            "products": [
                ("id", "integer", False),
                ("name", "varchar(200)", False),
                ("category", "varchar(100)", True),
                ("price", "numeric(10,2)", False),
            ],
            "shipments": [
                ("id", "integer", False),
                ("order_id", "integer", False),
                ("carrier", "varchar(50)", False),
                ("shipped_at", "timestamp", True),
                ("delivered_at", "timestamp", True),
            ],
        },
    ),
    "saas_analytics": (
        "postgresql",
        {
            "accounts": [
                ("id", "integer", False),
                ("name", "varchar(200)", False),
                ("plan", "varchar(20)", False),
                ("created_at", "timestamp", False),
                ("churned_at", "timestamp", True),
            ],
            "subscriptions": [
                ("id", "integer", False),
                ("account_id", "integer", False),
                ("mrr", "numeric(10,2)", False),
                ("started_at", "timestamp", False),
                ("ended_at", "timestamp", True),
            ],
            "invoices": [
                ("id", "integer", False),
                ("account_id", "integer", False),
                ("amount", "numeric(10,2)", False),
                ("status", "varchar(20)", False),
                ("due_date", "date", False),
            ],
        },
    ),
    "warehouse": (
        "snowflake",
        {
            "fact_sales": [
                ("sale_id", "number", False),
                ("date_key", "number", False),
                ("store_key", "number", False),
                ("amount", "number(12,2)", False),
            ],
            "dim_store": [
                ("store_key", "number", False),
                ("store_name", "varchar", False),
                ("region", "varchar", True),
            ],
        },
    ),
}
DB_PORTS = {"postgresql": 5432, "mysql": 3306, "snowflake": 443, "sqlite": None}

# column kinds drive the fake result values
SQL_QUERIES = [
    {
        "question": "What are the top {n} products by revenue in {year}?",
        "sql": "SELECT p.name AS product, SUM(oi.quantity * oi.unit_price) AS revenue\n"
        "FROM order_items oi\nJOIN products p ON p.id = oi.product_id\n"
        "JOIN orders o ON o.id = oi.order_id\n"
        "WHERE EXTRACT(YEAR FROM o.created_at) = {year}\n"
        "GROUP BY p.name\nORDER BY revenue DESC\nLIMIT {n};",
        "columns": [("product", "product"), ("revenue", "money")],
        "chart": "bar",
        "answer": "The top seller in {year} is **{first}** with ${value} in revenue.",
    },
    {
        "question": "How many orders did we get each month in {year}?",
        "sql": "SELECT DATE_TRUNC('month', created_at) AS month, COUNT(*) AS orders\n"
        "FROM orders\nWHERE EXTRACT(YEAR FROM created_at) = {year}\n"
        "GROUP BY 1\nORDER BY 1;",
        "columns": [("month", "month"), ("orders", "count")],
        "chart": "line",
        "answer": "Order volume peaked in **{first}** with {value} orders.",
    },
    {
        "question": "Which {n} customers spent the most?",
        "sql": "SELECT c.name AS customer, c.country, SUM(o.total) AS total_spent\n"
        "FROM customers c\nJOIN orders o ON o.customer_id = c.id\n"
        "WHERE o.status = 'completed'\n"
        "GROUP BY c.name, c.country\nORDER BY total_spent DESC\nLIMIT {n};",
        "columns": [("customer", "company"), ("country", "country"), ("total_spent", "money")],
        "chart": "table",
        "answer": "**{first}** is the biggest customer with ${value} spent.",
    },
    {
        "question": "What is the average order value by country?",
        "sql": "SELECT c.country, ROUND(AVG(o.total), 2) AS avg_order_value\n"
        "FROM orders o\nJOIN customers c ON c.id = o.customer_id\n"
        "GROUP BY c.country\nORDER BY avg_order_value DESC;",
        "columns": [("country", "country"), ("avg_order_value", "money_small")],
        "chart": "bar",
        "answer": "**{first}** has the highest average order value (${value}).",
    },
    {
        "question": "What share of revenue comes from each product category?",
        "sql": "SELECT p.category, ROUND(100.0 * SUM(oi.quantity * oi.unit_price)\n"
        "  / SUM(SUM(oi.quantity * oi.unit_price)) OVER (), 1) AS revenue_share\n"
        "FROM order_items oi\nJOIN products p ON p.id = oi.product_id\n"
        "GROUP BY p.category\nORDER BY revenue_share DESC;",
        "columns": [("category", "category"), ("revenue_share", "percent")],
        "chart": "pie",
        "answer": "**{first}** brings the largest share of revenue ({value}%).",
    },
    {
        "question": "Show monthly recurring revenue for the last 12 months",
        "sql": "SELECT DATE_TRUNC('month', started_at) AS month, SUM(mrr) AS mrr\n"
        "FROM subscriptions\n"
        "WHERE started_at >= CURRENT_DATE - INTERVAL '12 months'\n"
        "GROUP BY 1\nORDER BY 1;",
        "columns": [("month", "month"), ("mrr", "money")],
        "chart": "line",
        "answer": "MRR peaked at ${value} in **{first}**.",
    },
    {
        "question": "Which accounts churned last month?",
        "sql": "SELECT name AS account, plan, churned_at\nFROM accounts\n"
        "WHERE churned_at >= DATE_TRUNC('month', CURRENT_DATE) - INTERVAL '1 month'\n"
        "  AND churned_at < DATE_TRUNC('month', CURRENT_DATE)\nORDER BY churned_at;",
        "columns": [("account", "company"), ("plan", "plan"), ("churned_at", "date")],
        "chart": "table",
        "answer": "{rows} accounts churned last month, among them **{first}**.",
    },
    {
        "question": "What's the refund rate by payment method?",
        "sql": "SELECT payment_method,\n"
        "  ROUND(100.0 * AVG(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END), 2)\n"
        "    AS refund_rate\nFROM orders\nGROUP BY payment_method\n"
        "ORDER BY refund_rate DESC;",
        "columns": [("payment_method", "payment"), ("refund_rate", "percent_small")],
        "chart": "bar",
        "answer": "**{first}** has the highest refund rate at {value}%.",
    },
    {
        "question": "List invoices over ${amount} that are still unpaid",
        "sql": "SELECT i.id AS invoice_id, a.name AS account, i.amount, i.due_date\n"
        "FROM invoices i\nJOIN accounts a ON a.id = i.account_id\n"
        "WHERE i.status = 'open' AND i.amount > {amount}\nORDER BY i.due_date;",
        "columns": [
            ("invoice_id", "id"),
            ("account", "company"),
            ("amount", "money_small"),
            ("due_date", "date"),
        ],
        "chart": "table",
        "answer": "There are {rows} unpaid invoices over the threshold.",
    },
    {
        "question": "What is the average delivery time by carrier?",
        "sql": "SELECT carrier,\n"
        "  ROUND(AVG(EXTRACT(EPOCH FROM delivered_at - shipped_at) / 86400), 1) AS avg_days\n"
        "FROM shipments\nWHERE delivered_at IS NOT NULL\nGROUP BY carrier\n"
        "ORDER BY avg_days;",
        "columns": [("carrier", "carrier"), ("avg_days", "days")],
        "chart": "bar",
        "answer": "**{first}** is the fastest carrier at {value} days on average.",
    },
    {
        "question": "How many new signups per week this quarter?",
        "sql": "SELECT DATE_TRUNC('week', created_at) AS week, COUNT(*) AS signups\n"
        "FROM accounts\nWHERE created_at >= DATE_TRUNC('quarter', CURRENT_DATE)\n"
        "GROUP BY 1\nORDER BY 1;",
        "columns": [("week", "week"), ("signups", "count_small")],
        "chart": "line",
        "answer": "The best week was **{first}** with {value} signups.",
    },
    {
        "question": "Total sales by region for store {n}",
        "sql": "SELECT s.region, SUM(f.amount) AS sales\nFROM fact_sales f\n"
        "JOIN dim_store s ON s.store_key = f.store_key\nWHERE f.store_key = {n}\n"
        "GROUP BY s.region;",
        "columns": [("region", "region"), ("sales", "money")],
        "chart": "bar",
        "answer": "**{first}** leads with ${value} in sales.",
    },
]
SQL_ERRORS = [
    'column "revenu" does not exist',
    'syntax error at or near "GROUP"',
    'relation "sales" does not exist',
    "canceling statement due to statement timeout",
    "operator does not exist: text = integer",
    "permission denied for table invoices",
]
# follow-ups that rerun the previous question for another year
SQL_FOLLOW_UPS = ["Now show the same for {year}.", "What about {year}?", "Same for {year} please."]
SQL_VALUES = {
    "product": [
        "Wireless Earbuds Pro",
        "Ergonomic Office Chair",
        '4K Monitor 27"',
        "USB-C Hub 7-in-1",
        "Standing Desk Frame",
        "Mechanical Keyboard",
        "Noise-Cancelling Headphones",
        "Smart Water Bottle",
        'Laptop Sleeve 14"',
        "Webcam 1080p",
        "Portable SSD 1TB",
        "Desk Lamp LED",
    ],
    "company": [
        "Brightline Media",
        "Nordic Freight AB",
        "Sunrise Dental",
        "Kite & Key Studio",
        "Bluefin Capital",
        "Harbor Analytics",
        "Maple Leaf Foods",
        "Orbit Robotics",
        "Quartz Legal LLP",
        "Redwood Outdoors",
        "Silverline Travel",
        "Tidal Energy GmbH",
    ],
    "country": ["US", "DE", "GB", "FR", "NL", "CA", "AU", "IN", "BR", "JP", "ES", "SE"],
    "category": ["Electronics", "Furniture", "Accessories", "Home", "Outdoor", "Office"],
    "plan": ["starter", "growth", "business", "enterprise"],
    "payment": ["card", "paypal", "bank_transfer", "apple_pay", "klarna"],
    "carrier": ["UPS", "DHL Express", "FedEx", "USPS", "DPD", "PostNL"],
    "region": ["North America", "EMEA", "APAC", "LATAM"],
}
TTS_CHART_TYPES = ["bar", "line", "pie", "table", "scatter"]
TTS_PERMISSIONS = [
    ["query:read"],
    ["query:read", "schema:read"],
    ["query:read", "query:write", "schema:read"],
    ["query:read", "query:write", "schema:read", "admin:users"],
]
TTS_KEY_NAMES = ["CI pipeline", "Jupyter", "Metabase sync", "Slack bot", "Airflow", "Local dev"]
TTS_CONNECTION_NAMES = ["Production replica", "Analytics warehouse", "Staging", "Billing DB"]

QUERY_TEMPLATES = [
    {
        "name": "Top products by revenue",
        "category": "sales",
        "question": "What are the top {limit} products by revenue in {year}?",
        "sql": "SELECT p.name, SUM(oi.quantity * oi.unit_price) AS revenue\n"
        "FROM order_items oi JOIN products p ON p.id = oi.product_id\n"
        "JOIN orders o ON o.id = oi.order_id\n"
        "WHERE EXTRACT(YEAR FROM o.created_at) = {year}\n"
        "GROUP BY p.name ORDER BY revenue DESC LIMIT {limit};",
    },
    {
        "name": "Orders per month",
        "category": "sales",
        "question": "How many orders did we get each month in {year}?",
        "sql": "SELECT DATE_TRUNC('month', created_at) AS month, COUNT(*)\nFROM orders\n"
        "WHERE EXTRACT(YEAR FROM created_at) = {year} GROUP BY 1 ORDER BY 1;",
    },
    {
        "name": "Revenue by country",
        "category": "sales",
        "question": "What was the revenue in {country} between {start_date} and {end_date}?",
        "sql": "SELECT SUM(o.total)\nFROM orders o JOIN customers c ON c.id = o.customer_id\n"
        "WHERE c.country = '{country}'\n"
        "  AND o.created_at BETWEEN '{start_date}' AND '{end_date}';",
    },
    {
        "name": "Churned accounts",
        "category": "customers",
        "question": "Which accounts on the {plan} plan churned since {start_date}?",
        "sql": "SELECT name, churned_at FROM accounts\n"
        "WHERE plan = '{plan}' AND churned_at >= '{start_date}' ORDER BY churned_at;",
    },
    {
        "name": "MRR trend",
        "category": "finance",
        "question": "Show MRR for the last {months} months",
        "sql": "SELECT DATE_TRUNC('month', started_at) AS month, SUM(mrr)\n"
        "FROM subscriptions\n"
        "WHERE started_at >= CURRENT_DATE - INTERVAL '{months} months'\n"
        "GROUP BY 1 ORDER BY 1;",
    },
    {
        "name": "Unpaid invoices",
        "category": "finance",
        "question": "List unpaid invoices over ${amount}",
        "sql": "SELECT id, account_id, amount, due_date FROM invoices\n"
        "WHERE status = 'open' AND amount > {amount} ORDER BY due_date;",
    },
    {
        "name": "Customer lifetime value",
        "category": "customers",
        "question": "What is the lifetime value of customer {customer_id}?",
        "sql": "SELECT c.name, SUM(o.total) AS lifetime_value\n"
        "FROM customers c JOIN orders o ON o.customer_id = c.id\n"
        "WHERE c.id = {customer_id} GROUP BY c.name;",
    },
    {
        "name": "Delivery time by carrier",
        "category": "operations",
        "question": "Average delivery days by carrier since {start_date}",
        "sql": "SELECT carrier,\n"
        "  AVG(EXTRACT(EPOCH FROM delivered_at - shipped_at) / 86400) AS avg_days\n"
        "FROM shipments WHERE shipped_at >= '{start_date}' GROUP BY carrier;",
    },
    {
        "name": "Refund rate",
        "category": "operations",
        "question": "What is the refund rate for {payment_method} payments?",
        "sql": "SELECT AVG(CASE WHEN status = 'refunded' THEN 1.0 ELSE 0 END)\n"
        "FROM orders WHERE payment_method = '{payment_method}';",
    },
    {
        "name": "Weekly signups",
        "category": "growth",
        "question": "How many signups per week since {start_date}?",
        "sql": "SELECT DATE_TRUNC('week', created_at) AS week, COUNT(*)\nFROM accounts\n"
        "WHERE created_at >= '{start_date}' GROUP BY 1 ORDER BY 1;",
    },
]

# System settings of the text-to-SQL app. kind "secret" values are generated.
SYSTEM_CONFIG = [
    ("llm.default_model", "gpt-4o-mini", "Model used when the user has no preference"),
    ("llm.temperature", 0.1, "Sampling temperature for SQL generation"),
    ("llm.max_tokens", 1024, "Completion token limit per question"),
    ("query.timeout_seconds", 30, "Statement timeout for generated SQL"),
    ("query.max_rows", 1000, "Rows returned to the browser"),
    ("query.read_only", True, "Reject statements other than SELECT"),
    ("rate_limit.queries_per_minute", 20, "Per-user query rate limit"),
    (
        "features",
        {"charts": True, "csv_export": True, "query_templates": True, "voice_input": False},
        "Feature flags",
    ),
    ("ui.default_chart", "bar", "Chart shown when the model suggests none"),
    ("auth.refresh_token_days", 7, "Lifetime of refresh tokens"),
    ("openai.api_key", ("secret", "sk-proj-", 48), "OpenAI API key"),
    ("anthropic.api_key", ("secret", "sk-ant-api03-", 64), "Anthropic API key"),
    ("jwt.secret_key", ("secret", "", 64), "JWT signing key"),
    ("smtp.password", ("secret", "", 24), "Password of the SMTP relay account"),
    ("sentry.dsn", ("secret", "https://", 32), "Sentry DSN"),
]

AUDIT_ACTIONS = [
    # action, resource type, weight, success rate
    ("user.login", "user", 40, 0.94),
    ("user.logout", "user", 20, 1.0),
    ("user.update_preferences", "user", 6, 1.0),
    ("api_key.create", "api_key", 3, 1.0),
    ("api_key.revoke", "api_key", 1, 1.0),
    ("connection.create", "database_connection", 3, 0.9),
    ("connection.test", "database_connection", 5, 0.8),
    ("chat_session.delete", "chat_session", 4, 1.0),
    ("query_template.create", "query_template", 2, 1.0),
    ("query.export_csv", "query", 8, 1.0),
]
AUDIT_ERRORS = {
    "user.login": "Invalid credentials",
    "connection.create": "could not connect to server: Connection timed out",
    "connection.test": "FATAL: password authentication failed for user",
}
EVENT_TYPES = [
    ("page_view", 40),
    ("query_submitted", 25),
    ("chart_rendered", 15),
    ("export_csv", 4),
    ("template_used", 5),
    ("schema_browsed", 6),
    ("feedback_given", 2),
]
PAGES = ["/chat", "/history", "/templates", "/settings", "/connections", "/schema"]

# metric, unit, typical value, spread
PERF_METRICS = [
    ("query_execution_time", "ms", 420.0, 0.6),
    ("llm_latency", "ms", 1850.0, 0.4),
    ("api_response_time", "ms", 2400.0, 0.35),
    ("active_users", "count", 18.0, 0.5),
    ("cache_hit_rate", "%", 62.0, 0.15),
    ("db_pool_utilization", "%", 35.0, 0.4),
]

# --------------------------------------------------------------------------
# AI Chat v2
# --------------------------------------------------------------------------

AIC_TOPICS = [
    {
        "title": "Rolling averages in pandas",
        "context": "coding",
        "turns": [
            (
                "How do I calculate a 7-day rolling average in pandas?",
                "Use `rolling` on a datetime-indexed series:\n\n```python\n"
                "df = df.set_index('date').sort_index()\n"
                "df['sales_7d'] = df['sales'].rolling('7D').mean()\n```\n\n"
                "With a time-based window (`'7D'`) gaps in the dates are handled correctly.",
            ),
            (
                "What if some days are missing?",
                "A time-based window only averages the days that exist. If you want missing "
                "days to count as zero, reindex first:\n\n```python\n"
                "df = df.asfreq('D', fill_value=0)\n```",
            ),
            (
                "And how do I plot it next to the raw values?",
                "`df[['sales', 'sales_7d']].plot()` gives both lines; in Plotly use "
                "`px.line(df, y=['sales', 'sales_7d'])`.",
            ),
        ],
    },
    {
        "title": "P-values explained",
        "context": "data_analysis",
        "turns": [
            (
                "Can you explain p-values simply?",
                "A p-value is the probability of seeing a result at least as extreme as yours "
                "**if there were really no effect**. A small p-value (say 0.01) means the data "
                "would be surprising under 'no effect', so you doubt that assumption.",
            ),
            (
                "So p = 0.03 means a 97% chance my hypothesis is true?",
                "No, that's the most common misreading. It says nothing directly about the "
                "probability of your hypothesis; it only measures how surprising the data "
                "are under the null hypothesis.",
            ),
        ],
    },
    {
        "title": "Mean vs median",
        "context": "data_analysis",
        "turns": [
            (
                "Should I report mean or median salary?",
                "For salaries, usually the **median**: the distribution is right-skewed and a "
                "few very high earners pull the mean up.",
            ),
            (
                "Our mean is 78k and median 61k. Is that normal?",
                "Yes, a mean about 25% above the median is typical for pay data. Report both, "
                "plus the 25th and 75th percentiles.",
            ),
        ],
    },
    {
        "title": "Q3 KPI summary email",
        "context": "writing",
        "turns": [
            (
                "Help me write an email summarising our Q3 KPIs: revenue +12%, churn 3.1%, NPS 41.",
                "**Subject: Q3 results at a glance**\n\nHi team,\n\n- **Revenue** grew 12% "
                "quarter over quarter.\n- **Churn** held at 3.1%.\n- **NPS** reached 41.\n\n"
                "Thanks for a strong quarter!",
            ),
            (
                "Make it more formal.",
                "Dear colleagues,\n\nI am pleased to share our third-quarter results: revenue "
                "increased by 12%, customer churn remained at 3.1%, and our Net Promoter Score "
                "rose to 41.\n\nKind regards",
            ),
        ],
    },
    {
        "title": "Choosing a chart",
        "context": "data_analysis",
        "turns": [
            (
                "Which chart should I use to compare market share of 5 brands?",
                "A sorted **horizontal bar chart**. Pie charts make it hard to compare similar "
                "shares; bars sorted by value make the ranking obvious.",
            ),
            (
                "And over time?",
                "Use a line chart per brand, or a 100% stacked area chart if the total matters "
                "less than the split.",
            ),
        ],
    },
    {
        "title": "SQL duplicates after JOIN",
        "context": "coding",
        "turns": [
            (
                "Why does my GROUP BY return duplicate customers after a JOIN?",
                "Usually the join multiplies rows: a customer with 3 orders and 2 addresses "
                "becomes 6 rows. Aggregate each side in a subquery first, or join on a "
                "unique key.",
            ),
            (
                "Show me an example.",
                "```sql\nSELECT c.id, o.total_orders\nFROM customers c\nJOIN (\n"
                "  SELECT customer_id, COUNT(*) AS total_orders\n  FROM orders\n"
                "  GROUP BY customer_id\n) o ON o.customer_id = c.id;\n```",
            ),
        ],
    },
    {
        "title": "Cohort retention",
        "context": "general",
        "turns": [
            (
                "What is cohort retention?",
                "You group users by when they signed up (the cohort) and track what share is "
                "still active after 1, 2, 3… months. It separates growth from retention.",
            ),
            (
                "How do I build the table?",
                "1. Assign each user a signup month.\n2. For each activity month compute the "
                "month offset.\n3. Pivot: cohorts as rows, offsets as columns, active users / "
                "cohort size as values.",
            ),
        ],
    },
    {
        "title": "Churn model features",
        "context": "data_analysis",
        "turns": [
            (
                "Suggest features for a churn model for a subscription app.",
                "- Tenure and plan\n- Usage trend (last 30 vs previous 30 days)\n- Support "
                "tickets in the last 90 days\n- Failed payments\n- Days since last login",
            ),
            (
                "Which model would you start with?",
                "Gradient boosted trees (LightGBM or XGBoost): strong on tabular data, handle "
                "missing values, and give feature importances.",
            ),
        ],
    },
    {
        "title": "A/B test sample size",
        "context": "data_analysis",
        "turns": [
            (
                "How many users do I need for an A/B test to detect a 2% lift on a 10% "
                "conversion rate?",
                "For a relative lift of 2% (10.0% → 10.2%), alpha 0.05 and power 0.8 you "
                "need roughly **3.5 million users per variant**. A 10% relative lift needs "
                "about 15,000 per variant.",
            ),
        ],
    },
    {
        "title": "Hello",
        "context": "general",
        "turns": [
            ("hi", "Hi! How can I help with your data today?"),
            (
                "what can you do?",
                "I can explain statistics, help write pandas or SQL, suggest charts and "
                "review analyses. Paste a question or a snippet to start.",
            ),
        ],
    },
]
AIC_FOLLOW_UPS = [
    ("Thanks! Can you give a shorter version?", "Sure: {short}."),
    ("Is there a common pitfall here?", "The most common pitfall is {pitfall}."),
    (
        "Can you explain that like I'm new to this?",
        "Of course. The one thing to remember: {short}. Everything else is detail you can "
        "pick up as you go, and the most common beginner mistake is {pitfall}.",
    ),
    ("Thanks, that helps!", "Glad it helped! Ask again any time you want to go deeper."),
    (
        "How would I check that I did it right?",
        "Compare against a small example you can compute by hand, and watch out for {pitfall}.",
    ),
]
AIC_SHORT = [
    "use the median for skewed data",
    "aggregate before joining",
    "sort bars by value",
    "a time-based rolling window handles gaps",
]
AIC_PITFALLS = [
    "forgetting to sort by date first",
    "reading a p-value as the probability the hypothesis is true",
    "joining before aggregating",
    "comparing groups of very different sizes",
]
AIC_PERSONAS = ["analyst", "tutor", "assistant", "data_coach"]
AIC_TONES = ["casual", "technical"]
AIC_BEHAVIORS = ["normal", "cautious"]
AIC_MISTAKE_NOTES = [
    "Hallucinated a pandas argument that does not exist.",
    "Wrong formula: the sample size is off by an order of magnitude.",
    "Misread the question: the user asked for the median, not the mean.",
    "SQL example joins on the wrong key.",
    "Answer contradicts the previous message.",
    "Too confident about a causal claim from correlational data.",
]
