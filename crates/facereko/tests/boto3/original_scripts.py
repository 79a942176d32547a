"""The original's AWS scripts, as boto3 calls against a FaceReko Rekognition-compatible endpoint.

add_collection.py: create_collection(CollectionId=name)
add_image.py:      index_faces(Image={'Bytes': ...}, CollectionId=..., ExternalImageId=label,
                               DetectionAttributes=['ALL'])
the door:          search_faces_by_image(CollectionId='home', Image={'Bytes': ...},
                                         MaxFaces=1, FaceMatchThreshold=85)

Usage: original_scripts.py ENDPOINT_URL KEY_ID SECRET OWNER_1.jpg OWNER_2.jpg STRANGER.jpg BLANK.png
Asserts as it goes; prints one line per step; exits non-zero on the first failure.
"""

import sys

import boto3
import botocore.config
import botocore.exceptions

url, key_id, secret, owner_1, owner_2, stranger, blank = sys.argv[1:8]


def client(secret_key):
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret_key,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


rek = client(secret)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# add_collection.py -n home
response = rek.create_collection(CollectionId="home")
assert response["StatusCode"] == 200, response
print("Collection ARN: " + response["CollectionArn"])
assert "home" in rek.list_collections()["CollectionIds"]

# add_image.py -i selfie.jpg -c home -l Aaron
response = rek.index_faces(
    Image={"Bytes": read(owner_1)},
    CollectionId="home",
    ExternalImageId="Aaron",
    DetectionAttributes=["ALL"],
)
records = response["FaceRecords"]
assert len(records) == 1, response
face_id = records[0]["Face"]["FaceId"]
print("Faces indexed: " + face_id + " " + str(records[0]["Face"]["BoundingBox"]))

# The door: the owner's other photo matches, as the original searched.
match = rek.search_faces_by_image(
    CollectionId="home", Image={"Bytes": read(owner_2)}, MaxFaces=1, FaceMatchThreshold=85
)
matches = match["FaceMatches"]
assert len(matches) == 1, match
assert matches[0]["Face"]["ExternalImageId"] == "Aaron", match
similarity = matches[0]["Similarity"]
assert 85 <= similarity <= 100, similarity
print("Identity matched Aaron with %.2f similarity" % similarity)

# Someone else does not.
other = rek.search_faces_by_image(
    CollectionId="home", Image={"Bytes": read(stranger)}, MaxFaces=1, FaceMatchThreshold=85
)
assert other["FaceMatches"] == [], other
print("stranger: no match")

# CompareFaces: the owner's two photos match, the stranger does not.
same = rek.compare_faces(
    SourceImage={"Bytes": read(owner_1)}, TargetImage={"Bytes": read(owner_2)}, SimilarityThreshold=80
)
assert len(same["FaceMatches"]) == 1, same
diff = rek.compare_faces(
    SourceImage={"Bytes": read(owner_1)}, TargetImage={"Bytes": read(stranger)}, SimilarityThreshold=80
)
assert diff["FaceMatches"] == [] and len(diff["UnmatchedFaces"]) == 1, diff
print("compare_faces: same %.2f, other unmatched" % same["FaceMatches"][0]["Similarity"])

# No face: Rekognition's InvalidParameterException.
try:
    rek.search_faces_by_image(CollectionId="home", Image={"Bytes": read(blank)})
    raise AssertionError("a photo without a face was searched")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidParameterException", e.response
    print("no face: " + e.response["Error"]["Code"])

# A wrong secret is refused.
try:
    client("not-the-secret-not-the-secret-00000").list_collections()
    raise AssertionError("a wrongly signed request was answered")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidSignatureException", e.response
    print("wrong key: " + e.response["Error"]["Code"])

faces = rek.list_faces(CollectionId="home")["Faces"]
assert [f["FaceId"] for f in faces] == [face_id], faces
deleted = rek.delete_faces(CollectionId="home", FaceIds=[face_id])["DeletedFaces"]
assert deleted == [face_id], deleted
assert rek.delete_collection(CollectionId="home")["StatusCode"] == 200
print("cleaned up")
