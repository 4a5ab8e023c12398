"""occface: occluded face recognition (LCD recognizer, ID-GAN inpainting) on TensorFlow/Keras 3."""
from setuptools import find_namespace_packages, setup

# TensorFlow itself is not in install_requires: CPU users get `tensorflow-cpu` from requirements.txt,
# GPU users install `tensorflow[and-cuda]`; both provide the same `tensorflow` module and pip cannot
# express "either of the two".
setup(
    name="occface",
    version="0.1.0",
    description="Occluded face recognition: LCD recognizer and ID-GAN inpainting (TensorFlow / Keras 3)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Namespace discovery also lists the asset folders (data, no __init__.py) as packages, so that
    # setuptools ships them without its "absent from the packages configuration" warning.
    packages=find_namespace_packages(include=["occface", "occface.*"]),
    include_package_data=True,
    package_data={"occface": ["assets/**/*", "assets/*"]},
    install_requires=[
        "keras>=3.12,<4",
        "numpy>=1.26",
        "opencv-python-headless>=4.9",
        "absl-py>=2.1",
        "onnx>=1.16",
    ],
    extras_require={"plot": ["matplotlib>=3.7"], "test": ["pytest>=8"],
                    # dlib's ResNet as a peer recognizer (load_embedding_model("dlib"))
                    "dlib": ["dlib-bin>=19.24", "face_recognition_models>=0.3"]},
)
