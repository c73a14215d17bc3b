"""Entry point: `streamlit run console/app.py` (API address from env LTM_API_URL)."""

import streamlit as st

from ltm.console import links, ui
from ltm.console.client import sign_in

# No toolbar menu: its items and the theme picker are English only (`ltm up` also starts the console with
# --client.toolbarMode minimal, which holds from the first page on; this holds wherever else the app is started).
st.set_option("client.toolbarMode", "minimal")
st.set_page_config(page_title="ltm 训练管理", layout="wide")
ui.apply_style()

# Page modules live in views/, not pages/: a pages/ folder beside the main script switches a fresh server into
# Streamlit's legacy multipage mode, so a first deep link (/run?…) would run the page without this entry script.


def landing() -> None:
    st.switch_page(links.PROJECTS_PAGE, query_params=st.query_params.to_dict())


pages = [
    st.Page(landing, title="ltm", url_path="home", default=True, visibility="hidden"),
    st.Page(links.PROJECTS_PAGE, title="项目", icon=":material/folder:", url_path="projects"),
    st.Page(links.PROJECT_PAGE, title="项目详情", icon=":material/folder_open:", url_path="project"),
    st.Page(links.RUN_PAGE, title="运行详情", icon=":material/model_training:", url_path="run"),
    st.Page(links.SWEEP_PAGE, title="调参", icon=":material/tune:", url_path="sweep"),
    st.Page(links.COMPARE_PAGE, title="对比", icon=":material/compare:", url_path="compare"),
    st.Page(links.RESOURCES_PAGE, title="资源", icon=":material/memory:", url_path="resources"),
]
navigation = st.navigation(pages)
sign_in()
navigation.run()
